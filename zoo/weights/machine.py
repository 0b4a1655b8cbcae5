"""The machine a build ran on, as a weights file records it: the CPU's vendor and model, the
instruction set torch dispatched to, and the BLAS and oneDNN torch was built with -- what decides
the last bits of float results, so ``zoo reproduce`` can say why two builds differ."""

from __future__ import annotations

import functools
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Machine:
    """What the float results of a build depend on besides the code and the data."""

    vendor: str | None = None  # AuthenticAMD, GenuineIntel, Apple ...
    model: str | None = None  # AMD EPYC 7B13, Intel(R) Xeon(R) ...
    capability: str | None = None  # the ISA torch dispatched to: AVX2, AVX512, NEON ...
    blas: str | None = None  # mkl 2024.2, openblas ...
    onednn: str | None = None  # v3.12.0

    def describe(self) -> str:
        """'AMD EPYC (AuthenticAMD), AVX512, mkl 2024.2, oneDNN v3.12.0'."""
        cpu = " ".join(part for part in (self.model, f"({self.vendor})" if self.vendor else None) if part)
        return ", ".join(part for part in (cpu or "an unknown CPU", self.capability, self.blas,
                                           self.onednn and f"oneDNN {self.onednn}") if part)

    def differences(self, other: Machine) -> list[str]:
        """What differs from ``other`` (fields either does not know are left out)."""
        names = {"vendor": "CPU vendor", "model": "CPU", "capability": "instruction set", "blas": "BLAS",
                 "onednn": "oneDNN"}
        return [f"{names[k]} {getattr(self, k)} then, {getattr(other, k)} now" for k in names
                if getattr(self, k) and getattr(other, k) and getattr(self, k) != getattr(other, k)]


@functools.cache
def this_machine() -> Machine:
    """The machine this process runs on."""
    info = _cpuinfo()
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
    onednn = re.search(r"MKL-DNN (v[\d.]+)", config)
    return Machine(vendor=info.get("vendor_id") or None, model=info.get("model name") or platform.processor() or None,
                   capability=torch.backends.cpu.get_cpu_capability(),
                   blas=(f"{blas[1]} {mkl[1]}" if blas and mkl and blas[1] == "mkl" else blas[1]) if blas else None,
                   onednn=onednn[1] if onednn else None)


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux), else nothing."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines()) if v}
