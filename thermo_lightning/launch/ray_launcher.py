"""One Ray task per run, on an existing Ray cluster or a local one. A task whose worker or
node is lost is retried, and the run resumes from its last checkpoint. Ray is optional (the
``ray`` extra) and imported only when this launcher runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thermo_lightning.launch.base import LauncherError, SweepPlan, watch
from thermo_lightning.launch.worker import run_command

__all__ = ["RayLauncher"]


@dataclass
class _RayHandle:
    ref: Any
    log: str

    def done(self) -> bool:
        import ray

        ready, _ = ray.wait([self.ref], num_returns=1, timeout=0)
        return bool(ready)

    def running(self) -> bool:
        return not self.done()

    def failure(self) -> str | None:
        import ray

        try:
            code = ray.get(self.ref)
        except Exception as err:  # retries used up: the worker kept dying
            return f"{type(err).__name__}: {err}"
        return None if code == 0 else f"exit code {code} (see {self.log})"


@dataclass
class RayLauncher:
    """One Ray task per run.

    Attributes:
        address: an existing cluster (``ray://host:10001``, ``host:6379`` or ``auto``);
            ``None`` starts a local one (``num_cpus`` CPUs).
        cpus_per_run, gpus_per_run: what each task asks the cluster for.
        max_retries: retries of a task whose worker or node is lost (the run then resumes
            from its last checkpoint).
        num_cpus: CPUs of a local cluster (``None``: all).
    """

    address: str | None = field(default=None, metadata={
        "flag": "--ray-address", "help": "an existing cluster (default: start a local one)"})
    cpus_per_run: float = field(default=1.0, metadata={
        "flag": "--cpus-per-run", "type": float, "help": "CPUs per run"})
    gpus_per_run: float = field(default=0.0, metadata={
        "flag": "--gpus-per-run", "type": float, "help": "GPUs per run"})
    max_retries: int = 3
    num_cpus: int | None = field(default=None, metadata={
        "flag": "--ray-num-cpus", "type": int,
        "help": "CPUs of a local cluster (default: all of this machine's)"})
    _pid_files: bool = field(default=False, repr=False)  # tests: where each worker is

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]:
        try:
            import ray
        except ImportError as err:
            raise ImportError("--launcher ray needs Ray: pip install "
                              "'thermo-lightning[ray]'") from err

        started_here = not ray.is_initialized()
        if started_here:
            _check_reachable(self.address)
            kwargs: dict[str, Any] = {"address": self.address, "include_dashboard": False,
                                      "log_to_driver": False}
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            try:
                ray.init(**kwargs)
            except ConnectionError as err:  # address="auto" without a cluster, say
                raise LauncherError(f"--launcher ray: {err}") from None
        try:
            self._check_resources(ray)
        except LauncherError:
            if started_here:
                ray.shutdown()
            raise
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                          max_retries=self.max_retries)(run_command)
        try:
            handles = {}
            for run in plan.runs:
                pid_file = str(plan.out / f"{run.name}.worker") if self._pid_files else None
                log = str(plan.log(run.name))
                handles[run.name] = _RayHandle(task.remote(list(run.command), log, pid_file),
                                               log)
            return watch(plan, handles, desc="sweep (ray)", progress=progress, poll=0.5)
        finally:
            if started_here:
                ray.shutdown()

    def _check_resources(self, ray: Any) -> None:
        """Refuse a request the cluster can never grant (Ray would wait for it forever)."""
        have = ray.cluster_resources()
        for flag, want, key in (("--gpus-per-run", self.gpus_per_run, "GPU"),
                                ("--cpus-per-run", self.cpus_per_run, "CPU")):
            if want and float(have.get(key, 0.0)) < want:
                where = f"the Ray cluster at {self.address}" if self.address else (
                    "this machine's Ray cluster")
                raise LauncherError(
                    f"{flag} {want:g}: {where} has {float(have.get(key, 0.0)):g} {key}(s), so "
                    "no run could ever start. "
                    + ("Leave out --gpus-per-run to train on CPUs, or use a cluster with GPUs"
                       if key == "GPU" else "Ask for fewer CPUs per run")
                    + ".")


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Refuse an address where nothing answers, at once (``ray.init`` retries for minutes):
    ``host:port`` or ``ray://host:port``; ``None`` (a local cluster) and names Ray resolves
    itself (``auto``) pass."""
    import socket

    if address is None or ("://" not in address and ":" not in address):
        return
    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        return  # not host:port: Ray says what it makes of it
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as err:
        raise LauncherError(
            f"--ray-address {address}: nothing answers there ({err.strerror or err}). Start a "
            "cluster (`ray start --head` prints its address) and pass that address, or leave "
            "--ray-address out to start a local one.") from None
