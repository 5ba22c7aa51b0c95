"""README's "Extend it": a loss, a G and a D from a package outside src/, chosen by `_target_`,
trained through the CLI; its checkpoint's classes are built by src.generate only when the
package is trusted, and none of its code runs otherwise."""

import re
import shlex

from tests.conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text()
SECTION = README.split("### Extend it", 1)[1].split("\n## ", 1)[0]


def test_the_readme_extension_example_trains_and_needs_trust_to_generate(tmp_path):
    (code,) = re.findall(r"```python\n# (mygan/parts\.py)\n(.*?)```", SECTION, flags=re.S)
    package = tmp_path / "mygan"
    package.mkdir()
    marker = tmp_path / "imported"
    # what would show that its code ran: the package writes a file when it is imported
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp_path / code[0]).write_text(code[1])
    train, generate = re.findall(r"^PYTHONPATH=\. (python -m src\.\w+ .+)$", SECTION, flags=re.M)
    env = {"PYTHONPATH": str(tmp_path)}
    run_dir = tmp_path / "mine"
    args = [a.replace("outputs/train/mine", str(run_dir)) for a in shlex.split(train)[3:]]
    run_cli(*args, "debug=fast", "logger=csv", "data.batch_size=16",
            "callbacks.progress_bar.refresh_rate=0", env=env, fresh_process=True)  # fmt: skip
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "mygan.parts.SoftHinge" in config and "mygan.parts.WideGenerator" in config
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()

    args = [a.replace("outputs/train/mine", str(run_dir)) for a in shlex.split(generate)[3:]]
    untrusted = [a for a in args if not a.startswith("trust=")] + [f"out={tmp_path / 'g'}"]
    marker.unlink()
    refused = run_cli(*untrusted, module="src.generate", env=env, check=False, fresh_process=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "mygan.parts.WideGenerator" in line and "trust=[mygan]" in line, line
    assert not marker.exists()  # none of the package's code ran
    run_cli(*args, f"out={tmp_path / 'g'}", module="src.generate", env=env, fresh_process=True)
    assert marker.exists() and (tmp_path / "g" / "grid.png").is_file()
