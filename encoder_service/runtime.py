"""onnxruntime sessions: provider choice, thread settings, CUDA I/O binding."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

log = logging.getLogger("vitrine.encoder.runtime")


def choose_providers(wanted: str, device_id: int = 0) -> list:
    """``auto``: CUDA when onnxruntime-gpu sees a GPU, else CPU; ``cuda`` fails without one."""
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if wanted == "cuda" and not has_cuda:
        raise RuntimeError(
            f"providers=cuda but onnxruntime offers only {available} (install onnxruntime-gpu)"
        )
    if wanted in ("cuda", "auto") and has_cuda:
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRunner:
    """One onnxruntime session with fixed input names and output(s).

    ``run`` is thread-safe (onnxruntime sessions are) and releases the GIL while computing. On the
    CUDA provider the output is bound with I/O binding so onnxruntime allocates it on the device
    and copies it back once, instead of per-call host staging.
    """

    def __init__(
        self, path: str, providers: list, threads: int, output: str | tuple[str, ...] = "embedding"
    ) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, sess_options=opts, providers=providers)
        self.providers = self.session.get_providers()
        self.cuda = self.providers[0] == "CUDAExecutionProvider"
        self.outputs = [output] if isinstance(output, str) else list(output)
        self.input_names = [i.name for i in self.session.get_inputs()]
        log.info("session", extra={"model": path, "providers": self.providers, "threads": threads})

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray | tuple[np.ndarray, ...]:
        """The output for ``feeds``; a tuple when the runner has several outputs."""
        if not self.cuda:
            out = self.session.run(self.outputs, feeds)
        else:
            binding = self.session.io_binding()
            for name, value in feeds.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            for name in self.outputs:
                binding.bind_output(name, "cuda")
            self.session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()
        return out[0] if len(out) == 1 else tuple(out)
