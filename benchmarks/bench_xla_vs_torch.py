"""
Why is ResNet-50 slower under Keras/JAX (XLA:CPU) than under PyTorch on a CPU?

Run by hand in an environment that also has PyTorch (CPU wheel)::

    pip install torch --index-url https://download.pytorch.org/whl/cpu
    python benchmarks/bench_xla_vs_torch.py

Everything is measured in the same process, forward pass only (inference),
float32, batch 32, 64 x 64 x 2 stamps:

1. The whole network: Keras ``keras.applications.ResNet50`` (the library's
   ``resnet50``) jitted with JAX, against the same architecture written in
   PyTorch (ResNet v1 as in Keras: stride on the first 1x1 convolution of a
   block, biased convolutions), in eval mode, NCHW and channels-last, with
   PyTorch's oneDNN (mkldnn) convolutions on and off.
2. Single 3x3 convolutions of the shapes each ResNet stage runs at 64 x 64
   input, ``jax.lax.conv_general_dilated`` (NHWC, jitted) against
   ``torch.nn.functional.conv2d`` with and without oneDNN, in GFLOP/s.
   The same convolutions written as one matrix product over the shifted
   inputs (im2col), as ``m31clusters.models.SmallInputConv2D`` does.

Finding (2 cores, Sapphire Rapids): XLA:CPU runs a 3x3 convolution on a 2x2
(or 1x1) map at ~2 GFLOP/s against ~200 GFLOP/s for the same work at 4x4 or
as a matrix product.  At 64x64 input, ResNet-50's last stage has three such
convolutions, which took ~90% of the forward pass; `build_model` now swaps
them for ``SmallInputConv2D`` (same weights, same outputs), which brought
Keras/JAX from ~30 to ~230 img/s against ~280 img/s for PyTorch.  PyTorch
with oneDNN switched off runs at ~17 img/s: its speed comes from oneDNN.
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402


def _best(fn, repeat, number=1):
    fn()  # warm up (compilation, caches)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


# ---------------------------------------------------------------------------
# PyTorch ResNet-50 (Keras-style v1)


def torch_resnet50(channels=2):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, width, stride, project):
            super().__init__()
            cout = 4 * width
            self.c1 = nn.Conv2d(cin, width, 1, stride=stride)
            self.b1 = nn.BatchNorm2d(width, eps=1.001e-5)
            self.c2 = nn.Conv2d(width, width, 3, padding=1)
            self.b2 = nn.BatchNorm2d(width, eps=1.001e-5)
            self.c3 = nn.Conv2d(width, cout, 1)
            self.b3 = nn.BatchNorm2d(cout, eps=1.001e-5)
            self.proj = None
            if project:
                self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride),
                                          nn.BatchNorm2d(cout, eps=1.001e-5))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = torch.relu(self.b2(self.c2(y)))
            y = self.b3(self.c3(y))
            return torch.relu(y + (x if self.proj is None else self.proj(x)))

    layers = [nn.Conv2d(channels, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64, eps=1.001e-5),
              nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            layers.append(Block(cin, width, stride if b == 0 else 1, b == 0))
            cin = 4 * width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1), nn.Sigmoid()]
    return nn.Sequential(*layers).eval()


def bench_network(batch, size, repeat):
    import jax
    import torch

    from m31clusters.models import build_model

    print(f"== ResNet-50 forward, batch {batch}, {size}x{size}x2, float32 ==")
    print(f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), CPU cores: {os.cpu_count()}")
    x = np.random.default_rng(0).normal(size=(batch, size, size, 2)).astype(np.float32)

    model = build_model("resnet50", (size, size, 2))
    n_keras = model.count_params()
    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables])

    @jax.jit
    def forward(xb):
        out, _ = model.stateless_call(*state, xb, training=False)
        return out

    t_jax = _best(lambda: forward(x).block_until_ready(), repeat)
    results = {"Keras/JAX (XLA:CPU), jit": t_jax}

    net = torch_resnet50()
    n_torch = sum(p.numel() for p in net.parameters())
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        results["PyTorch eager, NCHW"] = _best(lambda: net(xt), repeat)
        net_cl = net.to(memory_format=torch.channels_last)
        xt_cl = xt.contiguous(memory_format=torch.channels_last)
        results["PyTorch eager, channels-last"] = _best(lambda: net_cl(xt_cl), repeat)
        net = net.to(memory_format=torch.contiguous_format)
        with torch.backends.mkldnn.flags(enabled=False):
            results["PyTorch eager, NCHW, oneDNN off"] = _best(lambda: net(xt), repeat)
    # Keras counts the BatchNorm moving mean/variance as parameters, PyTorch keeps them
    # as buffers: add them so that the counts compare like for like
    n_torch += sum(b.numel() for name, b in net.named_buffers() if name.endswith(
        ("running_mean", "running_var")))
    print(f"parameters (incl. BatchNorm statistics): Keras {n_keras:,}, PyTorch {n_torch:,}")
    for name, t in results.items():
        print(f"  {name:34s} {batch / t:7.1f} img/s  ({1e3 * t:7.1f} ms/batch)")
    return results


def bench_convs(batch, size, repeat):
    import jax
    import torch

    print(f"== single 3x3 convolutions (stride 1, same padding), batch {batch} ==")
    # (spatial size, channels) of each stage's 3x3 convolution at size x size input
    stages = [(size // 4, 64), (size // 8, 128), (size // 16, 256), (size // 32, 512)]
    rng = np.random.default_rng(1)
    print(f"  {'HxW':>5s} {'C':>4s} {'GFLOP':>6s} {'XLA GFLOP/s':>12s} {'XLA im2col':>11s} "
          f"{'torch oneDNN':>13s} {'torch no-oneDNN':>16s}")
    total = {"xla": 0.0, "torch": 0.0, "torch_off": 0.0}
    conv = jax.jit(lambda a, b: jax.lax.conv_general_dilated(
        a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    def im2col(a, b):  # what m31clusters.models.SmallInputConv2D computes
        n, h, w, ci = a.shape
        p = jax.numpy.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))
        cols = jax.numpy.concatenate(
            [p[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], axis=-1)
        return cols @ b.reshape(9 * ci, -1)

    im2col = jax.jit(im2col)
    for hw, c in stages:
        x = rng.normal(size=(batch, hw, hw, c)).astype(np.float32)
        w = rng.normal(size=(3, 3, c, c)).astype(np.float32)
        flops = 2.0 * batch * hw * hw * c * c * 9

        xj, wj = jax.device_put(x), jax.device_put(w)
        t_x = _best(lambda a=xj, b=wj: conv(a, b).block_until_ready(), repeat, number=5)
        t_i = _best(lambda a=xj, b=wj: im2col(a, b).block_until_ready(), repeat, number=5)

        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())

        def torch_conv(a=xt, b=wt):
            return torch.nn.functional.conv2d(a, b, padding=1)

        with torch.inference_mode():
            t_t = _best(torch_conv, repeat, number=5)
            with torch.backends.mkldnn.flags(enabled=False):
                t_o = _best(torch_conv, repeat, number=5)
        total["xla"] += t_x
        total["torch"] += t_t
        total["torch_off"] += t_o
        print(f"  {hw:>2d}x{hw:<2d} {c:>4d} {flops / 1e9:6.2f} {flops / t_x / 1e9:12.1f} "
              f"{flops / t_i / 1e9:11.1f} "
              f"{flops / t_t / 1e9:13.1f} {flops / t_o / 1e9:16.1f}")
    print(f"  sum of the four: XLA {1e3 * total['xla']:.1f} ms, torch {1e3 * total['torch']:.1f} ms"
          f" (oneDNN off {1e3 * total['torch_off']:.1f} ms)")
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    bench_network(args.batch, args.size, args.repeat)
    bench_convs(args.batch, args.size, args.repeat)


if __name__ == "__main__":
    main()
