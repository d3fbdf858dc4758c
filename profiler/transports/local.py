"""The local transport: the board is this machine, reached through a work folder and a subprocess.

It takes exactly the steps the SSH transport takes, so the whole pipeline is exercised without a board.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from agents.start import START_RECORD
from profiler.config import DeviceConfig
from profiler.transports.base import (
    Transport,
    TransportError,
    agent_files,
    agent_hash,
    job_dir,
    model_relpath,
    parse_agent_info,
)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalTransport(Transport):
    def __init__(self, config: DeviceConfig, workdir: Path | None = None):
        self.config = config
        self.root = Path(workdir) if workdir is not None else config.workdir()
        self.python = config.connection.python or sys.executable
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.agent_dir: Path | None = None

    def prepare(self) -> str:
        digest = agent_hash(self.config.agent.plugins)
        target = self.root / "agent" / digest
        if not (target / ".complete").exists():
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            for rel, src in agent_files(self.config.agent.plugins):
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            (tmp / ".complete").write_text(digest)
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        self.agent_dir = target
        return digest

    def missing_models(self, filenames: list[str]) -> list[str]:
        return [f for f in filenames if not (self.root / model_relpath(f)).exists()]

    def put_model(self, local_path: Path) -> None:
        dst = self.root / model_relpath(Path(local_path).name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(f".part{os.getpid()}")
        try:
            os.link(local_path, tmp)
        except OSError:
            shutil.copyfile(local_path, tmp)
        os.replace(tmp, dst)

    def put_job(self, job_id: str, job_text: str) -> None:
        """Written whole or not at all (a temp file renamed over it): a host syncing the board meanwhile sees
        no job.json or the whole one, never a half-written file."""
        d = self.root / job_dir(job_id)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"job.json.part{os.getpid()}"
        tmp.write_text(job_text)
        os.replace(tmp, d / "job.json")

    def start(self, job_id: str) -> None:
        """Start the runner once per job; a second call follows the first runner.

        The runner records a start token in runner.json as on an SSH board, so the work folder has the same
        layout and a runner started twice for one job by any path leaves the first one's job untouched.
        """
        if self.agent_dir is None:
            raise TransportError("prepare() must run before start()")
        if job_id in self._procs:
            return
        d = self.root / job_dir(job_id)
        if (d / START_RECORD).exists():
            raise TransportError(f"{self.config.name}: job {job_id} was already started by another host process "
                                 f"({d / START_RECORD})")
        env = dict(os.environ, PYTHONPATH=str(self.agent_dir))
        try:
            with open(d / "agent.log", "ab") as log:  # the child keeps its own descriptor
                self._procs[job_id] = subprocess.Popen(
                    [self.python, "-m", "agents", "run", str(d / "job.json"), "--out", str(d / "results.jsonl"),
                     "--board-lock", str(self.root / "board.lock"), "--start-token", secrets.token_hex(8)],
                    cwd=str(self.agent_dir), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True)  # Ctrl-C reaches the host, which then stops the agent cleanly
        except OSError as e:
            raise TransportError(f"{self.config.name}: cannot start {self.python}: {e}") from None

    def read_results(self, job_id: str, offset: int) -> bytes:
        try:
            with open(self.root / job_dir(job_id) / "results.jsonl", "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def read_job(self, job_id: str) -> bytes:
        try:
            return (self.root / job_dir(job_id) / "job.json").read_bytes()
        except FileNotFoundError:
            return b""

    def finished(self, job_id: str) -> int | None:
        p = self._procs.get(job_id)
        if p is not None:
            return p.poll()
        # A job started by an earlier host process (the agent survives the host: its own session).
        status = self._status(job_id)
        if status.get("state") == "running" and _alive(status.get("pid")):
            return None
        return {"finished": 0, "interrupted": 130}.get(status.get("state", ""), 255)

    def _status(self, job_id: str) -> dict:
        try:
            return json.loads((self.root / job_dir(job_id) / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def list_jobs(self) -> list[str]:
        d = self.root / "jobs"
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.exists() else []

    def mark_ingested(self, job_id: str) -> None:
        (self.root / job_dir(job_id) / "ingested").write_text("1")

    def is_ingested(self, job_id: str) -> bool:
        return (self.root / job_dir(job_id) / "ingested").exists()

    def agent_info(self) -> dict:
        if self.agent_dir is None:
            raise TransportError("prepare() must run before agent_info()")
        r = subprocess.run([self.python, "-m", "agents", "info", "--json"], cwd=str(self.agent_dir),
                           env=dict(os.environ, PYTHONPATH=str(self.agent_dir)), capture_output=True,
                           text=True, check=False, timeout=120)
        if r.returncode != 0:
            raise TransportError(f"{self.config.name}: `python -m agents info` failed: {r.stderr.strip()[-500:]}")
        return parse_agent_info(self.config.name, r.stdout)

    def log_tail(self, job_id: str, n_lines: int = 20) -> str:
        try:
            text = (self.root / job_dir(job_id) / "agent.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-n_lines:])

    def stop(self, job_id: str) -> None:
        p = self._procs.get(job_id)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def close(self) -> None:
        for job_id in list(self._procs):
            self.stop(job_id)
