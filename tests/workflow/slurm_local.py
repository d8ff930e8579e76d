"""A one-node SLURM cluster on localhost for the executor test: Debian's slurmctld, slurmd and munge, started by
hand (no systemd, no cgroups) and stopped by the PIDs in their pid files.

The recipe and its workarounds are those of the build machines (docs: environment.md, section 5): the node is
``localhost`` at 127.0.0.1 whatever the host name; ``DefMemPerCPU`` keeps jobs without ``--mem`` from taking the
whole node; ``MinJobAge=3600`` keeps finished jobs visible to ``squeue``/``scontrol`` for the whole run (there is
no accounting database, so no ``sacct``); the configuration is linked at Debian's default path ``/etc/slurm/slurm.conf``
because the job-step plugin strips ``SLURM_CONF`` from the environment of its nested ``srun``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
MUNGE_PID = Path("/run/munge/munged.pid")


def unavailable_reason() -> str | None:
    """Why no local cluster can be brought up here (None when it can)."""
    if os.geteuid() != 0:
        return "the SLURM test needs root (to install Debian's slurm and munge and start their daemons)"
    if not all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")) and not shutil.which("apt-get"):
        return "slurm and munge are not installed and there is no apt-get to install them"
    return None


def _run(*cmd: str, timeout: float = 60, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    return res


def install() -> None:
    """Install the Debian packages where a binary is missing (apt-get update only if the first try fails)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if _run(*cmd, timeout=300, check=False, env=env).returncode != 0:
        _run("apt-get", "update", "-q", timeout=300, env=env)
        _run(*cmd, timeout=300, env=env)


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _stop(pid_file: Path, wait: float = 15) -> None:
    """SIGTERM the process of ``pid_file`` (never by name), then SIGKILL if it is still there after ``wait`` s."""
    pid = _pid(pid_file)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


class LocalSlurm:
    """Bring up (``start``) and tear down (``stop``) the cluster; all its state lives under ``root``."""

    def __init__(self, root: Path, partition: str = "debug", cpus: int | None = None) -> None:
        self.root = Path(root)
        self.partition = partition
        # more CPUs than the machine has (slurmd then trusts the configuration): short jobs, dominated by start-up
        # and by the executor's polling, overlap instead of queueing
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = self.root / "slurm.conf"
        self.started_munge = False
        self._saved_conf: Path | None = None
        self._linked = False
        # what Debian's config path pointed to before this cluster linked its own (None: nothing was there)
        self.conf_before = DEFAULT_CONF.resolve() if DEFAULT_CONF.exists() else None

    # -- configuration ----------------------------------------------------------------------------------------------
    def _write_conf(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        mem_mb = int(int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                              if line.startswith("MemTotal:"))) / 1024 * 0.9)
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=etcbench-test",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={mem_mb} State=UNKNOWN",
            *(["SlurmdParameters=config_overrides"] if self.cpus > (os.cpu_count() or 1) else []),
            f"PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "CredType=cred/munge",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=1024", "MinJobAge=3600", "ReturnToService=2", "KillWait=5", "InactiveLimit=0",
            "MpiDefault=none", "SwitchType=switch/none",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log/slurmctld.log'}", f"SlurmdLogFile={r / 'log/slurmd.log'}", "",
        ]))
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
            self._saved_conf = self.root / "slurm.conf.saved"
            DEFAULT_CONF.rename(self._saved_conf)
        DEFAULT_CONF.symlink_to(self.conf)
        self._linked = True

    def _start_munge(self) -> None:
        if _pid(MUNGE_PID) is not None:  # a munged already runs: use it, leave it running
            return
        run_dir = MUNGE_PID.parent
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_bytes(os.urandom(1024))
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
        _run("runuser", "-u", "munge", "--", "munged")
        self.started_munge = True

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        install()
        self._write_conf()
        self._start_munge()
        _run("slurmctld", "-c", "-f", str(self.conf))
        _run("slurmd", "-f", str(self.conf), "-N", "localhost")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = _run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if state == "idle":
                return
            if state.startswith(("down", "drain")):
                _run("scontrol", "update", "nodename=localhost", "state=resume", check=False)
            time.sleep(0.5)
        raise RuntimeError(f"the SLURM node did not become idle within {timeout:.0f} s (state {state!r}); "
                           f"logs in {self.root / 'log'}")

    def stop(self) -> None:
        """Cancel this cluster's jobs, wait for the queue to empty, then stop the daemons this object started and
        restore Debian's config path; a second call does nothing."""
        try:
            if _pid(self.root / "slurmctld.pid") is not None:
                _run("scancel", "--partition", self.partition, check=False)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    queue = _run("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", check=False)
                    if queue.returncode != 0 or not queue.stdout.strip():
                        break
                    time.sleep(0.5)
        finally:
            _stop(self.root / "slurmd.pid")
            _stop(self.root / "slurmctld.pid")
            if self.started_munge:
                _stop(MUNGE_PID)
                self.started_munge = False
            if self._linked and DEFAULT_CONF.is_symlink():
                DEFAULT_CONF.unlink()
                if self._saved_conf is not None:
                    self._saved_conf.rename(DEFAULT_CONF)
            self._linked = False

    def job_state(self, job_id: str) -> str:
        """The job's state as ``scontrol`` reports it (finished jobs stay for ``MinJobAge`` seconds)."""
        out = _run("scontrol", "show", "job", job_id, check=False).stdout
        for field in out.split():
            if field.startswith("JobState="):
                return field.split("=", 1)[1]
        return "UNKNOWN"
