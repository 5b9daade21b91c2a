"""The reward server from a config: the judge loader (run in each inference worker), the two APIs, and LitServe."""

from __future__ import annotations

from dataclasses import dataclass

from unified_reward.serving.requests import Limits


@dataclass(frozen=True)
class JudgeLoader:
    """Builds the judge inside the worker that serves it (`judges.load_judge`), on the device LitServe gives."""

    judge: str
    family: str = "qwen2_vl"
    templates: str | None = None
    dtype: str = "float32"
    batch_size: int = 16
    seed: int = 0
    named: tuple[tuple[str, str], ...] = ()  # judge names -> classes (configs/named_judges)

    def __call__(self, device: str):
        from unified_reward.judging.loading import load_judge

        judge = load_judge(
            self.judge,
            seed=self.seed,
            family=self.family,
            templates=self.templates,
            dtype=self.dtype,
            batch_size=self.batch_size,
            named=dict(self.named),
        )
        if hasattr(judge, "model"):
            judge.model.to(device)
        return judge


def build_server(
    loader: JudgeLoader,
    limits: Limits,
    *,
    token: str | None = None,
    chat: bool = True,
    chat_max_new_tokens: int = 512,
    max_batch_size: int = 16,
    batch_timeout: float = 0.01,
    timeout: float = 60.0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    workers_per_device: int = 1,
):
    import litserve as ls

    from unified_reward.serving.api import BodyTimeoutMiddleware, ChatAPI, JudgeAPI, TokenMiddleware

    apis = [
        JudgeAPI(
            loader,
            limits,
            api_path="/v1/judge",
            max_batch_size=max_batch_size,
            batch_timeout=batch_timeout,
        )
    ]
    if chat:
        apis.append(ChatAPI(loader, limits, max_new_tokens=chat_max_new_tokens))
    return ls.LitServer(
        apis,
        accelerator=accelerator,
        devices=devices,
        workers_per_device=workers_per_device,
        timeout=timeout,
        max_payload_size=limits.max_request_bytes,
        fast_queue=True,  # ZeroMQ between the HTTP server and the workers, not a multiprocessing Manager queue
        middlewares=[
            (TokenMiddleware, {"token": token}),
            (BodyTimeoutMiddleware, {"seconds": limits.body_timeout_s}),
        ],
    )
