"""Screening quality levers in a plain training loop (experiments/digits_quality/RESULTS.md).

Not the template's training code: a bare loop over the same networks (src.models.dcgan),
augmentation and data, with the alternating D/G step of src/models/gan_module.py, so one
lever at a time can be switched on from the command line. Winners were then re-measured
through `python -m src.train` (RESULTS.md says which). One thread per run, so two run side
by side on a 2-core machine:

    python experiments/digits_quality/screen.py --name base
    python experiments/digits_quality/screen.py --name mix20 --mix 20
    python experiments/digits_quality/screen.py --name mix20_lr4h --mix 20 --lr 4e-4 --decay half

Prints one JSON line every --score_every epochs: the share of 1,000 samples the digit
classifier gives >= 0.9 confidence, and the smallest / largest class share.
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments" / "digits_quality"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from digit_classifier import load_or_train, score  # noqa: E402
from torch import nn  # noqa: E402

from src.data.digits import load_digits_images  # noqa: E402
from src.models.dcgan import Discriminator, Generator  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--name", default="x")
p.add_argument("--epochs", type=int, default=80)
p.add_argument("--lr", type=float, default=2e-4)
p.add_argument("--lr_d", type=float, default=None)
p.add_argument("--beta1", type=float, default=0.5)
p.add_argument("--bs", type=int, default=64)
p.add_argument("--ngf", type=int, default=32)
p.add_argument("--ndf", type=int, default=32)
p.add_argument("--nz", type=int, default=100)
p.add_argument("--aug", default="translation")
p.add_argument("--r1", type=float, default=0.0)
p.add_argument("--smooth", type=float, default=0.0)
p.add_argument("--topk", type=float, default=1.0)
p.add_argument("--cat", type=int, default=0)
p.add_argument("--info_w", type=float, default=1.0)
p.add_argument("--sn", action="store_true")
p.add_argument("--hinge", action="store_true")
p.add_argument("--ema", type=float, default=0.0)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--d_steps", type=int, default=1)
p.add_argument("--score_every", type=int, default=20)
p.add_argument("--mix", type=int, default=0)
p.add_argument("--mix_scale", type=float, default=1.0)
p.add_argument("--ls", action="store_true")
p.add_argument("--lecam", type=float, default=0.0)
p.add_argument("--joint", action="store_true")
p.add_argument("--dnobn", action="store_true")
p.add_argument("--decay", default="none")
p.add_argument("--beta2", type=float, default=0.999)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
data, _ = load_digits_images(32)
data = ((data + 1) * 127.5).round().to(torch.uint8)
nz = a.nz + a.cat
G = Generator(32, 1, nz, ngf=a.ngf, latent_components=0)
D = Discriminator(32, 1, ndf=a.ndf, norm="batch")
if a.cat:
    # Q head on D's last feature map (InfoGAN)
    D_body = D.net[:-1]
    D_last = D.net[-1]
    width = D_last.in_channels
    Q = nn.Sequential(
        nn.Flatten(), nn.Linear(width * 16, 128), nn.LeakyReLU(0.2), nn.Linear(128, a.cat)
    )
if a.dnobn:
    D.net = nn.Sequential(*[m for m in D.net if not isinstance(m, nn.BatchNorm2d)])
if a.sn:
    for m in D.modules():
        if isinstance(m, nn.Conv2d):
            nn.utils.parametrizations.spectral_norm(m)
G = G.to(memory_format=torch.channels_last)
D = D.to(memory_format=torch.channels_last)
opt_d = torch.optim.Adam(
    list(D.parameters()) + (list(Q.parameters()) if a.cat else []),
    lr=a.lr_d or a.lr,
    betas=(a.beta1, a.beta2),
)
opt_g = torch.optim.Adam(G.parameters(), lr=a.lr, betas=(a.beta1, a.beta2))
aug_names = [s for s in a.aug.split(",") if s]


def color(x):
    n = len(x)
    x = x + (torch.rand(n, 1, 1, 1) - 0.5) * 0.5  # brightness: +-0.25 on the [-1, 1] scale
    m = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - m) * (torch.rand(n, 1, 1, 1) + 0.5) + m  # contrast 0.5..1.5


def diff_augment(x, names):
    from src.models.augment import diff_augment as da

    if "color" in names:
        x = color(x)
    return da(x, [n for n in names if n != "color"])


aug = aug_names


def d_forward(x, with_q=False):
    if not a.cat:
        return D.net(x).view(-1), None
    h = D_body(x)
    return D_last(h).view(-1), (Q(h) if with_q else None)


centers = torch.randn(max(a.mix, 1), a.nz, generator=torch.Generator().manual_seed(7)) * a.mix_scale


def latent(n, gen=None):
    z = torch.randn(n, a.nz, generator=gen)
    if a.mix:
        z = z + centers[torch.randint(0, a.mix, (n,), generator=gen)]
    if not a.cat:
        return z, None
    c = torch.randint(0, a.cat, (n,))
    return torch.cat([z, F.one_hot(c, a.cat).float()], 1), c


Gema = copy.deepcopy(G) if a.ema else None
clf = load_or_train()


def eval_g(net):
    net.eval()
    with torch.no_grad():
        z = (
            latent(1000, torch.Generator().manual_seed(1234))[0]
            if a.mix
            else torch.randn(1000, a.nz, generator=torch.Generator().manual_seed(1234))
        )
        if a.cat:
            c = torch.arange(1000) % a.cat
            z = torch.cat([z, F.one_hot(c, a.cat).float()], 1)
        x = net(z)
    net.train()
    return score(clf, x)


steps_per_epoch = len(data) // a.bs
total = steps_per_epoch * a.epochs
scheds = [
    torch.optim.lr_scheduler.LambdaLR(
        o,
        lambda s: (
            1 - s / total
            if a.decay == "linear"
            else (1.0 if s < total / 2 else 1 - (s - total / 2) / (total / 2))
            if a.decay == "half"
            else 1.0
        ),
    )
    for o in (opt_d, opt_g)
]
t0 = time.time()
step = 0
ema_r = torch.tensor(0.0)
ema_f = torch.tensor(0.0)
for ep in range(a.epochs):
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(a.seed + ep))
    for i in range(steps_per_epoch):
        real = (
            data[perm[i * a.bs : (i + 1) * a.bs]]
            .float()
            .div(127.5)
            .sub(1)
            .contiguous(memory_format=torch.channels_last)
        )
        z, c = latent(a.bs)
        g_turn = (step + 1) % a.d_steps == 0
        with torch.set_grad_enabled(g_turn):
            fake = G(z)
        ra = diff_augment(real, aug)
        if a.r1:
            ra.requires_grad_(True)
        if a.joint:
            both, _ = d_forward(torch.cat([ra, diff_augment(fake.detach(), aug)]))
            rl, fl = both.split(len(real))
            fq = None
        else:
            rl, _ = d_forward(ra)
            fl, fq = d_forward(diff_augment(fake.detach(), aug), with_q=bool(a.cat))
        if a.hinge:
            ld = F.relu(1 - rl).mean() + F.relu(1 + fl).mean()
        elif a.ls:
            ld = 0.5 * ((rl - 1) ** 2).mean() + 0.5 * (fl**2).mean()
        else:
            ld = (
                F.binary_cross_entropy_with_logits(rl, torch.full_like(rl, 1 - a.smooth))
                + F.softplus(fl).mean()
            )
        if a.cat:
            ld = ld + a.info_w * F.cross_entropy(fq, c)
        if a.lecam:
            ema_r = 0.99 * ema_r + 0.01 * rl.detach().mean()
            ema_f = 0.99 * ema_f + 0.01 * fl.detach().mean()
            ld = ld + a.lecam * (
                F.relu(rl - ema_f).pow(2).mean() + F.relu(ema_r - fl).pow(2).mean()
            )
        if a.r1:
            (g,) = torch.autograd.grad(rl.sum(), ra, create_graph=True)
            ld = ld + a.r1 / 2 * g.pow(2).sum([1, 2, 3]).mean()
        opt_d.zero_grad(set_to_none=True)
        ld.backward()
        opt_d.step()
        if g_turn:
            D.requires_grad_(False)
            if a.cat:
                Q.requires_grad_(False)
            if a.joint:
                fl = d_forward(torch.cat([diff_augment(real, aug), diff_augment(fake, aug)]))[0][
                    len(real) :
                ]
            else:
                fl, fq = d_forward(diff_augment(fake, aug), with_q=bool(a.cat))
            if a.topk < 1.0:
                frac = max(a.topk, 0.99 ** (ep))  # anneal from 1 to topk (Sinha et al. 2020)
                k = max(1, int(round(frac * len(fl))))
                fl = fl.topk(k).values
            lg = (
                -fl.mean()
                if a.hinge
                else (0.5 * ((fl - 1) ** 2).mean() if a.ls else F.softplus(-fl).mean())
            )
            if a.cat:
                lg = lg + a.info_w * F.cross_entropy(fq, c)
            opt_g.zero_grad(set_to_none=True)
            lg.backward()
            opt_g.step()
            D.requires_grad_(True)
            if a.cat:
                Q.requires_grad_(True)
            if Gema is not None:
                with torch.no_grad():
                    for pe, pg in zip(Gema.parameters(), G.parameters(), strict=True):
                        pe.lerp_(pg, 1 - a.ema)
                    for be, bg in zip(Gema.buffers(), G.buffers(), strict=True):
                        be.copy_(bg)
        step += 1
        for sc in scheds:
            sc.step()
    if (ep + 1) % a.score_every == 0 or ep + 1 == a.epochs:
        s = eval_g(G)
        out = {
            "name": a.name,
            "epoch": ep,
            "t": round(time.time() - t0),
            "conf": round(s["recognisable"], 3),
            "min": s["min_share"],
            "max": s["max_share"],
        }
        if Gema is not None:
            out["ema_conf"] = round(eval_g(Gema)["recognisable"], 3)
        print(json.dumps(out), flush=True)
