"""BatchNorm with PyTorch's own forward and first backward and a closed-form, fused second derivative.

Saliency methods that differentiate twice (input gradient, input x gradient, Grad-CAM / HiResCAM below the last
feature map) run the backward of every BatchNorm layer after the differentiated tensor with ``create_graph=True``,
and the training step then differentiates that backward again. PyTorch's built-in double backward of BatchNorm is
composed of dozens of small kernels per layer and dominates the cost of such a step (pytorch/pytorch#3076). Here
the second derivative is written in closed form, as a handful of per-channel reductions and two or three
element-wise passes, and can optionally be compiled with :func:`torch.compile` into a few fused kernels.

Pieces:

- :class:`BatchNormGrad`: which second derivative a saliency method uses (``"native"``, ``"exact"`` - the closed
  form, the default - or ``"per_sample"``, batch statistics held constant in the saliency term);
- :func:`exact_batch_norm`: functional BatchNorm whose forward and first backward are PyTorch's own kernels
  (``aten::_batch_norm_impl_index`` and its backward: the native, cuDNN or MIOpen implementation that
  ``torch.nn.functional.batch_norm`` would pick), so outputs, first gradients and running statistics are
  bit-identical to the native path, and whose second derivative is the closed form;
- :func:`patch_batchnorm`: swaps that function into BatchNorm modules' ``forward`` (an instance attribute; the
  class, parameters, buffers and state dict are untouched) and returns a handle whose ``remove()`` undoes it;
  patches are reference counted, so several methods can share a module;
- :func:`frozen_batch_statistics`: context manager under which first backwards of train-mode BatchNorm treat the
  batch mean and variance as constants (used by ``"per_sample"``);
- :func:`set_batchnorm_compile`: opt in to :func:`torch.compile` of the closed form (compiled lazily, on the
  first double backward; any failure falls back to the eager form for the rest of the process).

Second derivative (per channel, ``<.>`` the mean over the ``N = B * prod(spatial)`` positions, ``r`` the inverse
standard deviation, ``xh = (x - mean) r``, ``g`` the incoming gradient, ``q``, ``u``, ``v`` the gradients flowing
back into ``dx``, ``dweight``, ``dbias``). Train mode, ``dx = w r (g - <g> - xh <g xh>)``:

- ``d/dg = w r (q - <q> - xh <q xh>) + u xh + v``;
- ``d/dw = r N (<q g> - <g><q> - <g xh><q xh>)``;
- ``d/dx = r (H - <H> - xh <H xh>) - r xh <q dx>`` with ``H = u g - w r (g <q xh> + q <g xh>)``.

Eval mode (or frozen statistics), ``dx = w r g``: ``d/dg = w r q + u xh + v``, ``d/dw = r N <q g>``,
``d/dx = u r g``.

SyncBatchNorm is left native (not patched): in a distributed run its statistics and its first-backward sums are
all-reduced across processes, which the closed form here does not do; a single-process SyncBatchNorm runs as
a plain BatchNorm and is then exact either way. BatchNorm subclasses that override ``forward`` and lazy modules
not yet initialised are left native too.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import MethodType

import torch
from monai.utils import StrEnum
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "BatchNormGrad",
    "BatchNormPatch",
    "batch_norm_double_backward",
    "exact_batch_norm",
    "frozen_batch_statistics",
    "patch_batchnorm",
    "patchable_batchnorms",
    "set_batchnorm_compile",
]

logger = logging.getLogger(__name__)


class BatchNormGrad(StrEnum):
    """Second derivative of BatchNorm used by a saliency method that differentiates twice.

    - ``native``: PyTorch's own double backward (nothing is patched).
    - ``exact``: the same values from the closed form of :mod:`monai_explain.saliency.batchnorm` (default).
    - ``per_sample``: in train mode, the batch statistics are held constant in the saliency term, so that each
      sample's map depends only on that sample (given the statistics); the supervised loss still back-propagates
      through the statistics. Without it a train-mode BatchNorm after the differentiated layer couples the samples
      of a batch: a sample's map changes when the other samples change (e.g. Grad-CAM channel weights summing to
      zero over the batch). In eval mode both are the same.
    """

    NATIVE = "native"
    EXACT = "exact"
    PER_SAMPLE = "per_sample"


# ------------------------------------------------------------------------------------------------ global switches
_frozen_depth = 0  # a plain global, not thread-local: the autograd engine runs accelerator backwards in its threads
_frozen_lock = threading.Lock()


@contextmanager
def frozen_batch_statistics() -> Iterator[None]:
    """First backwards of train-mode BatchNorm (patched modules) run inside this block treat the batch statistics
    as constants: ``dx = w r g``. Used around the saliency ``autograd.grad`` of ``BatchNormGrad.PER_SAMPLE``."""
    global _frozen_depth
    with _frozen_lock:
        _frozen_depth += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_depth -= 1


_compile_requested = False
_compiled: dict[str, Callable] = {}
_compile_failed = False


def set_batchnorm_compile(enabled: bool) -> None:
    """Use :func:`torch.compile` for the closed-form second derivative (off by default).

    The formula is compiled lazily on its first use; if compilation or a compiled call fails, a warning is logged
    and the eager closed form (same values) is used from then on.
    """
    global _compile_requested, _compile_failed
    _compile_requested = bool(enabled)
    _compile_failed = False
    _compiled.clear()


# ------------------------------------------------------------------------------------------- closed-form formulas
def _stats_shape(x: torch.Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.ndim))


def _csum(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sum, accumulated in (at least) float32, keeping the broadcast shape."""
    return t.sum(dim=_reduce_dims(t), keepdim=True, dtype=torch.promote_types(t.dtype, torch.float32))


def batch_norm_double_backward(
    ggx: torch.Tensor | None,
    ggw: torch.Tensor | None,
    ggb: torch.Tensor | None,
    g: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    mean: torch.Tensor,
    invstd: torch.Tensor,
    batch_stats: bool,
    sum_g: torch.Tensor | None = None,
    sum_gxh: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Closed-form derivatives of BatchNorm's first backward ``(dx, dweight, dbias)`` (see the module docstring).

    Args:
        ggx: gradient flowing into ``dx`` (``x``-shaped) or None.
        ggw: gradient flowing into ``dweight`` (``(C,)``) or None.
        ggb: gradient flowing into ``dbias`` (``(C,)``) or None.
        g: the first backward's incoming gradient (``x``-shaped).
        x: BatchNorm's input ``(B, C, *spatial)``.
        weight: ``(C,)`` affine weight or None.
        mean: ``(C,)`` mean used for normalisation (batch or running).
        invstd: ``(C,)`` inverse standard deviation used for normalisation.
        batch_stats: whether ``mean`` / ``invstd`` are the batch's own statistics (train mode), i.e. functions of
            ``x``; False for running statistics or frozen batch statistics.
        sum_g: optional precomputed per-channel ``sum(g)`` (``(C,)``).
        sum_gxh: optional precomputed per-channel ``sum(g * xh)`` (``(C,)``).

    Returns:
        ``(grad_g, grad_x, grad_weight)``; an entry is None when no incoming gradient reaches it.
    """
    shape = _stats_shape(x)
    acc = torch.promote_types(x.dtype, torch.float32)
    m = mean.to(acc).reshape(shape)
    r = invstd.to(acc).reshape(shape)
    wr = r if weight is None else weight.to(acc).reshape(shape) * r
    u = ggw.to(acc).reshape(shape) if ggw is not None and weight is not None else None
    v = ggb.to(acc).reshape(shape) if ggb is not None and weight is not None else None
    if ggx is None and u is None and v is None:
        return None, None, None
    inv_n = 1.0 / max(1, x.numel() // max(1, x.shape[1]))
    xh = (x - m) * r
    grad_x: torch.Tensor | None = None
    grad_w: torch.Tensor | None = None
    if not batch_stats:
        # dx = w r g, dw = sum(g xh), db = sum(g)
        if ggx is not None:
            grad_g = torch.addcmul(v, ggx, wr) if v is not None else ggx * wr
        else:
            grad_g = v.expand_as(x) if v is not None else torch.zeros_like(xh)
        if u is not None:
            grad_g = torch.addcmul(grad_g, xh, u)
            grad_x = g * (u * r)
        if ggx is not None:
            grad_w = _csum(ggx * g) * r
    else:
        mg = (sum_g.to(acc).reshape(shape) if sum_g is not None else _csum(g)) * inv_n
        mgx = (sum_gxh.to(acc).reshape(shape) if sum_gxh is not None else _csum(g * xh)) * inv_n
        # H = cg g + cq q; d/dx = r (H - <H> - xh <H xh>) - r xh <q dx> = r cg g + r cq q - r a3 xh - r <H>
        # with a3 = <H xh> + <q dx>; d/dg = w r q + c1 xh + c0
        cg = u  # None stands for 0 (no zero tensors, no extra kernels)
        mean_h = u * mg if u is not None else None
        a3 = u * mgx if u is not None else None
        c0, c1 = v, u
        if ggx is not None:
            mq = _csum(ggx) * inv_n
            mqx = _csum(ggx * xh) * inv_n
            mqg = _csum(ggx * g) * inv_n
            proj = mqg - mg * mq - mgx * mqx  # <q (g - <g> - xh <g xh>)>
            grad_w = proj * (r / inv_n)
            wr_mqx = wr * mqx
            cg = -wr_mqx if cg is None else cg - wr_mqx
            h0 = wr * (mg * mqx + mq * mgx)
            mean_h = -h0 if mean_h is None else mean_h - h0
            a1 = wr * proj - 2.0 * wr_mqx * mgx
            a3 = a1 if a3 is None else a3 + a1
            c0 = -(wr * mq) if c0 is None else c0 - wr * mq
            c1 = -wr_mqx if c1 is None else c1 - wr_mqx
            grad_g = torch.addcmul(c0, ggx, wr).addcmul_(xh, c1)
        elif c1 is not None:
            grad_g = torch.addcmul(c0, xh, c1) if c0 is not None else xh * c1
        else:
            assert c0 is not None  # u and v are never both None here (no affine means u = v = 0 is not reached)
            grad_g = c0.expand_as(x)
        if cg is not None:  # dbias alone does not depend on x
            assert mean_h is not None and a3 is not None  # set together with cg above
            nr = -r
            grad_x = torch.addcmul(nr * mean_h, g, r * cg).addcmul_(xh, nr * a3)
            if ggx is not None:
                grad_x = grad_x.addcmul_(ggx, nr * (wr * mgx))
    grad_g = grad_g.to(g.dtype)
    if grad_x is not None:
        grad_x = grad_x.to(x.dtype)
    if grad_w is not None and weight is not None:
        grad_w = grad_w.reshape(-1).to(weight.dtype)
    else:
        grad_w = None
    return grad_g, grad_x, grad_w


def _double_backward_impl() -> Callable:
    """The closed form, compiled when :func:`set_batchnorm_compile` asked for it and compilation works."""
    global _compile_failed
    if not _compile_requested or _compile_failed:
        return batch_norm_double_backward
    fn = _compiled.get("fn")
    if fn is None:
        try:
            fn = torch.compile(batch_norm_double_backward, dynamic=True, fullgraph=True)
        except Exception as e:  # noqa: BLE001 - any failure: keep the eager form
            logger.warning("torch.compile of the BatchNorm double backward failed (%s): using the eager form.", e)
            _compile_failed = True
            return batch_norm_double_backward
        _compiled["fn"] = fn
    return fn


def _run_double_backward(*args, **kwargs):
    global _compile_failed
    fn = _double_backward_impl()
    if fn is batch_norm_double_backward:
        return fn(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - compiled call failed (e.g. no compiler): eager from now on
        logger.warning("compiled BatchNorm double backward failed (%s): using the eager form.", e)
        _compile_failed = True
        _compiled.clear()
        return batch_norm_double_backward(*args, **kwargs)


# ----------------------------------------------------------------------------------------------- autograd pieces
def _is_batched(t: torch.Tensor) -> bool:
    """Whether ``t`` is a vmap batched tensor (inside ``is_grads_batched`` / ``torch.func.vmap``)."""
    ft = getattr(torch._C, "_functorch", None)
    for name in ("is_legacy_batchedtensor", "is_batchedtensor"):  # autograd.grad uses the legacy vmap
        check = getattr(ft, name, None)
        if check is not None and check(t):
            return True
    return False


class _BatchNormBackward(torch.autograd.Function):
    """``(g, x, weight) -> (dx, dweight, dbias)``: PyTorch's first backward; backward = the closed form."""

    @staticmethod
    def forward(
        ctx, g, x, weight, running_mean, running_var, save_mean, save_invstd, reserve, impl, train, eps, frozen
    ):
        mask = [True, weight is not None, weight is not None]
        if frozen:
            # batch statistics held constant: dx = w r g, as in eval mode with the batch's mean and invstd
            shape = _stats_shape(x)
            acc = torch.promote_types(x.dtype, torch.float32)
            r = save_invstd.to(acc).reshape(shape)
            wr = r if weight is None else r * weight.to(acc).reshape(shape)
            dx = (g * wr).to(g.dtype)
            dw = db = None
            if weight is not None:
                db = _csum(g).reshape(-1).to(weight.dtype)
                dw = _csum(g * ((x - save_mean.to(acc).reshape(shape)) * r)).reshape(-1).to(weight.dtype)
        else:
            dx, dw, db = torch.ops.aten._batch_norm_impl_index_backward(
                impl, x, g, weight, running_mean, running_var, save_mean, save_invstd, train, eps, mask, reserve
            )
            if weight is None:
                dw = db = None
        batch_stats = train and not frozen
        if train:  # the batch's own statistics (held constant when frozen)
            mean, invstd = save_mean, save_invstd
        else:  # eval mode: the running statistics
            mean = running_mean
            invstd = torch.rsqrt(running_var.to(torch.promote_types(running_var.dtype, torch.float32)) + eps)
        ctx.save_for_backward(g, x, weight, mean, invstd, dw, db)
        ctx.batch_stats = batch_stats
        ctx.set_materialize_grads(False)
        return dx, dw, db

    @staticmethod
    @once_differentiable
    def backward(ctx, ggx, ggw, ggb):
        g, x, weight, mean, invstd, dw, db = ctx.saved_tensors
        grad_g, grad_x, grad_w = _run_double_backward(
            ggx, ggw, ggb, g, x, weight, mean, invstd, ctx.batch_stats, sum_g=db, sum_gxh=dw
        )
        if not ctx.needs_input_grad[0]:
            grad_g = None
        if not ctx.needs_input_grad[1]:
            grad_x = None
        if not ctx.needs_input_grad[2]:
            grad_w = None
        return grad_g, grad_x, grad_w, None, None, None, None, None, None, None, None, None


class _BatchNormFunction(torch.autograd.Function):
    """BatchNorm forward through ``aten::_batch_norm_impl_index`` (running statistics updated in place)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        out, save_mean, save_invstd, reserve, impl = torch._batch_norm_impl_index(
            x, weight, bias, running_mean, running_var, training, momentum, eps, torch.backends.cudnn.enabled
        )
        ctx.save_for_backward(x, weight, running_mean, running_var, save_mean, save_invstd, reserve)
        ctx.impl, ctx.training, ctx.eps = impl, training, eps
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight, running_mean, running_var, save_mean, save_invstd, reserve = ctx.saved_tensors
        frozen = ctx.training and _frozen_depth > 0
        if _is_batched(g) and not frozen:
            # under vmap (autograd.grad(..., is_grads_batched=True)) the closed form's saved tensors would lose their
            # batch dimension: use PyTorch's differentiable first backward (native double backward) instead
            mask = [True, weight is not None, weight is not None]
            dx, dw, db = torch.ops.aten._batch_norm_impl_index_backward(
                ctx.impl,
                x,
                g,
                weight,
                running_mean,
                running_var,
                save_mean,
                save_invstd,
                ctx.training,
                ctx.eps,
                mask,
                reserve,
            )
        else:
            dx, dw, db = _BatchNormBackward.apply(
                g,
                x,
                weight,
                running_mean,
                running_var,
                save_mean,
                save_invstd,
                reserve,
                ctx.impl,
                ctx.training,
                ctx.eps,
                frozen,
            )
        return (
            dx if ctx.needs_input_grad[0] else None,
            dw if ctx.needs_input_grad[1] else None,
            db if ctx.needs_input_grad[2] and ctx.has_bias else None,
            None,
            None,
            None,
            None,
            None,
        )


def exact_batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Drop-in for :func:`torch.nn.functional.batch_norm` (same arguments) with the closed-form second derivative.

    Forward and first backward run PyTorch's own kernels, so values, first gradients and running statistics equal
    the native path; only the double backward differs in how it is computed.
    """
    if weight is not None and bias is None:
        bias = torch.zeros_like(weight)
    if bias is not None and weight is None:
        weight = torch.ones_like(bias)
    if type(x) is not torch.Tensor:
        # a subclass (MONAI's MetaTensor) would wrap the output as a view of the Function's output, which a following
        # in-place op (DenseNet's ReLU(inplace=True)) may not modify: compute on the plain tensor
        x = x.as_subclass(torch.Tensor)
    return _BatchNormFunction.apply(x, weight, bias, running_mean, running_var, training, momentum, eps)


# ------------------------------------------------------------------------------------------------ module patching
def _exact_forward(self: _BatchNorm, input: torch.Tensor) -> torch.Tensor:
    """``_BatchNorm.forward`` with :func:`exact_batch_norm` in place of ``F.batch_norm``."""
    if not torch.is_grad_enabled():
        return type(self).forward(self, input)
    self._check_input_dim(input)
    factor = 0.0 if self.momentum is None else self.momentum
    if self.training and self.track_running_stats and self.num_batches_tracked is not None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
    bn_training = True if self.training else (self.running_mean is None and self.running_var is None)
    use_buffers = not self.training or self.track_running_stats
    return exact_batch_norm(
        input,
        self.running_mean if use_buffers else None,
        self.running_var if use_buffers else None,
        self.weight,
        self.bias,
        bn_training,
        factor,
        self.eps,
    )


def patchable_batchnorms(modules: Iterable[nn.Module]) -> list[_BatchNorm]:
    """The BatchNorm modules among ``modules`` that can be patched: ``_BatchNorm`` instances whose class keeps
    ``_BatchNorm.forward`` (BatchNorm1d/2d/3d), initialised; SyncBatchNorm and custom forwards are excluded."""
    out = []
    for m in modules:
        if not isinstance(m, _BatchNorm) or isinstance(m, nn.SyncBatchNorm):
            continue
        if type(m).forward is not _BatchNorm.forward:
            continue
        if isinstance(m.weight, nn.parameter.UninitializedParameter):
            continue
        out.append(m)
    return out


_MISSING = object()
_patches: weakref.WeakKeyDictionary[nn.Module, list] = weakref.WeakKeyDictionary()  # module -> [count, previous]
_patch_lock = threading.Lock()


class BatchNormPatch:
    """Handle of :func:`patch_batchnorm`: :meth:`remove` restores the modules' own ``forward`` (idempotent)."""

    def __init__(self, modules: list[_BatchNorm]) -> None:
        self._modules = [weakref.ref(m) for m in modules]
        self.active = bool(modules)

    @property
    def modules(self) -> list[nn.Module]:
        """The patched modules that still exist."""
        return [m for m in (r() for r in self._modules) if m is not None]

    def remove(self) -> None:
        if not self.active:
            return
        self.active = False
        with _patch_lock:
            for m in self.modules:
                entry = _patches.get(m)
                if entry is None:
                    continue
                entry[0] -= 1
                if entry[0] > 0:
                    continue
                del _patches[m]
                if entry[1] is _MISSING:
                    m.__dict__.pop("forward", None)
                else:
                    m.__dict__["forward"] = entry[1]

    def __enter__(self) -> BatchNormPatch:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def patch_batchnorm(modules: Iterable[nn.Module]) -> BatchNormPatch:
    """Swap :func:`exact_batch_norm` into the ``forward`` of the patchable BatchNorm modules among ``modules``.

    Only an instance attribute ``forward`` is set (removed again by the handle), so parameters, buffers, the state
    dict, hooks and the class are unchanged. A forward without gradients (``no_grad``, ``inference_mode``) runs the
    class's own forward. Patches are reference counted per module.

    Args:
        modules: candidate modules (e.g. ``model.modules()``); non-BatchNorm modules are ignored.

    Returns:
        A :class:`BatchNormPatch`; call ``remove()`` (or use it as a context manager) to undo.
    """
    chosen = patchable_batchnorms(modules)
    with _patch_lock:
        for m in chosen:
            entry = _patches.get(m)
            if entry is not None:
                entry[0] += 1
                continue
            _patches[m] = [1, m.__dict__.get("forward", _MISSING)]
            m.__dict__["forward"] = MethodType(_exact_forward, m)
    return BatchNormPatch(chosen)
