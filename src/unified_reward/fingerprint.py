"""A short hash of a model's weights and the settings that shaped some derived data, for caches that must
be rebuilt when either changes (oracle-ranked pairs, precomputed reference log-probs)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from torch import nn


def weights_fingerprint(model: nn.Module, settings: dict[str, Any] | None = None) -> str:
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        if hasattr(tensor, "full_tensor"):  # a sharded (FSDP2) parameter: every rank gathers it alike
            tensor = tensor.full_tensor()
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    digest.update(json.dumps(settings or {}, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]
