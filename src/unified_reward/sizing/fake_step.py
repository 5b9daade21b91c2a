"""Running a training step on fake tensors, and counting every byte it allocates.

`IndexAwareFakeMode` is torch's `FakeTensorMode` (tensors with shapes and dtypes but no data, so a 7B step costs
seconds and no memory) where small integer tensors keep their values: the VLMs compute positions, windows and
sequence lengths from the image grid and the token ids with `.tolist()`, which plain fake tensors cannot answer.
Floating-point data never decide a shape; an op whose output shape depends on data it lacks runs on zeros
instead, and is counted in `stand_ins` (none in the steps measured here).

`StepMemoryTracker` is torch's `MemTracker` (every tensor storage, by category: parameter, gradient, optimizer
state, activation, temporary) keeping only the whole-step peak: its per-module statistics cost seconds per op
at 7B and refuse a module that runs twice in a step (a DPO reference pass).
Both rest on torch's private `_subclasses` / `distributed._tools` modules, within the torch range setup.py pins.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter

import torch
from torch import nn
from torch._subclasses import fake_tensor
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.distributed._tools.mem_tracker import _TOTAL_KEY, MemTracker, _MemRefType
from torch.utils import _pytree as pytree
from torch.utils._mode_utils import no_dispatch

INDEX_NUMEL_LIMIT = 1 << 22  # integer tensors up to this size keep their values (ids, positions, masks)


def _is_index(t: torch.Tensor) -> bool:
    return not (t.dtype.is_floating_point or t.dtype.is_complex)


class IndexAwareFakeMode(FakeTensorMode):
    def __init__(self):
        super().__init__(allow_non_fake_inputs=True)
        self.stand_ins: Counter[str] = Counter()

    @contextlib.contextmanager
    def active(self):
        """The mode, with small tensors computed on constants kept as constants (torch keeps 1-element ones)."""
        limit = fake_tensor.CONSTANT_NUMEL_LIMIT
        fake_tensor.CONSTANT_NUMEL_LIMIT = INDEX_NUMEL_LIMIT
        try:
            with self:
                yield self
        finally:
            fake_tensor.CONSTANT_NUMEL_LIMIT = limit

    def index(self, tensor: torch.Tensor) -> FakeTensor:
        """A real integer tensor as a fake one that keeps its values (create it outside the mode)."""
        return self.fake_tensor_converter.from_real_tensor(self, tensor, make_constant=True)

    def dispatch(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat = pytree.tree_leaves((args, kwargs))
        try:
            out = super().dispatch(func, types, args, kwargs)
        except (fake_tensor.DataDependentOutputException, fake_tensor.DynamicOutputShapeException):
            return self._run_on_values(func, args, kwargs)
        factory = not any(isinstance(a, torch.Tensor) for a in flat)
        if (
            factory
            and isinstance(out, FakeTensor)
            and _is_index(out)
            and out.numel() <= INDEX_NUMEL_LIMIT
            and torch.Tag.nondeterministic_seeded not in getattr(func, "tags", ())
        ):  # arange and friends: their values are what the positions are computed from
            with no_dispatch():
                values = func(*args, **kwargs)
            return self.index(values)
        return out

    def _run_on_values(self, func, args, kwargs):
        def value(t):
            if not isinstance(t, FakeTensor):
                return t
            if t.constant is not None:
                return t.constant
            self.stand_ins[str(func)] += 1
            with no_dispatch():
                return torch.zeros(t.shape, dtype=t.dtype)

        real_args, real_kwargs = pytree.tree_map(value, (args, kwargs))
        with no_dispatch():
            out = func(*real_args, **real_kwargs)

        def fake(t):
            if not isinstance(t, torch.Tensor):
                return t
            keep = _is_index(t) and t.numel() <= INDEX_NUMEL_LIMIT
            return self.fake_tensor_converter.from_real_tensor(self, t, make_constant=keep)

        return pytree.tree_map(fake, out)


class RealMode:
    """IndexAwareFakeMode's interface on real tensors: the same step, computed and allocated (tests compare them)."""

    stand_ins: Counter[str] = Counter()

    def active(self):
        return contextlib.nullcontext(self)

    def index(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor


@contextlib.contextmanager
def moves_in_place():
    """`Module.to` swaps fake parameters for new ones and fails on them (peft moves each new adapter to its base
    layer's device). A model built on fake tensors is on the CPU in its dtypes already: a move that changes
    nothing returns the module as it is; any other move still fails loudly."""
    to = torch.nn.Module.to

    def to_if_needed(module, *args, **kwargs):
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        floats = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
        same_device = device is None or torch.device(device).type == "cpu"
        if same_device and (dtype is None or all(t.dtype == dtype for t in floats)):
            return module
        return to(module, *args, **kwargs)

    torch.nn.Module.to = to_if_needed
    try:
        yield
    finally:
        torch.nn.Module.to = to


class StepMemoryTracker(MemTracker):
    """MemTracker with the whole-step peak only, plus the peak of activations and temporaries alone."""

    def __init__(self):
        super().__init__()
        self.activation_peak = 0
        self._seen: weakref.WeakSet[nn.Module] = weakref.WeakSet()

    # the module hooks keep only what the step's totals need: parameters tracked on a module's first call (a
    # module may run several times a step: a DPO reference pass, checkpointed recomputation) and, in backward,
    # which recomputed forward is running, so its tensors count as activations (MemTracker's own rule)
    def _pre_fw_hook(self, module: nn.Module, inputs) -> None:
        if module not in self._seen:
            self._seen.add(module)
            self._track_module_params_and_buffers(module, install_grad_hooks=True)
        if self._mod_tracker.is_bw and self._ac_mod is None:
            self._ac_mod = weakref.ref(module)
            self._in_ac = True

    def _post_fw_hook(self, module: nn.Module, inputs, outputs) -> None:
        if self._mod_tracker.is_bw and self._ac_mod is not None and self._ac_mod() is module:
            self._ac_mod = None
            self._in_ac = False

    def _pre_bw_hook(self, module: nn.Module, args) -> None:
        pass

    def _post_bw_hook(self, module: nn.Module, args) -> None:
        pass

    def _update_peak_stats(self, peak_state) -> None:
        for device, snapshot in self._curr_mem_snap.items():
            live = snapshot.get("Activation", 0) + snapshot.get("Temp", 0)
            self.activation_peak = max(self.activation_peak, live)
            if self._peak_mem.get(device, 0) < snapshot[_TOTAL_KEY]:
                self._peak_mem[device] = snapshot[_TOTAL_KEY]
                self._peak_mem_snap[device] = dict(snapshot)

    def _track_module_params_and_buffers(self, module: nn.Module, install_grad_hooks: bool = True):
        """MemTracker's, with gradient hooks on trainable parameters only (frozen ones cannot take hooks)."""
        memory = super()._track_module_params_and_buffers(module, install_grad_hooks=False)
        if install_grad_hooks:
            for parameter in module.parameters():
                if parameter.requires_grad and self._param_to_grad_hook_handles.get(parameter) is None:
                    self._param_to_grad_hook_handles[parameter] = (
                        parameter.register_hook(self._track_gradient),
                        parameter.register_post_accumulate_grad_hook(lambda p: self._track_gradient(p.grad)),
                    )
        return memory

    def _track_gradient(self, gradient: torch.Tensor) -> None:
        self._update_and_maybe_create_winfos(gradient, _MemRefType.GRAD)

    def end_phase(self) -> dict[str, int]:
        """The peak breakdown since the last phase ended; the next phase's peak starts from what is live now."""
        breakdown = self.peak_breakdown()
        self._peak_mem, self._peak_mem_snap = {}, {}
        self._update_peak_stats(None)
        return breakdown

    def peak_breakdown(self) -> dict[str, int]:
        """Bytes by category at the step's peak, summed over devices, and `Total`."""
        totals: Counter[str] = Counter()
        for snapshot in self._peak_mem_snap.values():
            totals.update({getattr(k, "value", k): v for k, v in snapshot.items()})
        return dict(totals)
