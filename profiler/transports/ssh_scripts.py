"""The shell command lines the SSH transport runs on the board for one job: start the agent detached (once),
probe whether the job ended, stop it. Every word is shlex-quoted; the job folder `d` is an absolute path
the transport already checked."""

from __future__ import annotations

import shlex

from agents.start import START_RECORD

ALREADY_STARTED = 3  # the agent's exit status when the job folder already records a start


def quote_command(argv: list[str]) -> str:
    """One shell command line from words, every word quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def pids_of(d: str) -> str:
    """Shell words listing the job's pids: agent.pid (the wrapper started first), and the pid and parent_pid
    that runner.json (and status.json, which older agents alone wrote) hold, one key a line: the runner that
    owns the job and its wrapper, which differ from the first when a resent start's runner won the record."""
    q = shlex.quote
    files = " ".join(q(f"{d}/{name}") for name in (START_RECORD, "status.json"))
    return (f"$(cat {q(d + '/agent.pid')} 2>/dev/null) "
            f"$(sed -n 's/^ *\"\\(parent_\\)\\{{0,1\\}}pid\": *\\([0-9][0-9]*\\).*/\\2/p' {files} 2>/dev/null)")


def start_command(d: str, agent_dir: str, python: str, board_lock: str, token: str) -> str:
    """Launch the runner detached unless the job already records a start: `started`, `following` (this
    token's runner owns it: a resend), or exit ALREADY_STARTED (another host process's)."""
    q = shlex.quote
    record = q(f"{d}/{START_RECORD}")
    mine = q(f'"token": "{token}"')  # the line runner.json holds when this start's runner owns the job
    run = quote_command([python, "-m", "agents", "run", f"{d}/job.json", "--out", f"{d}/results.jsonl",
                         "-q", "--board-lock", board_lock, "--start-token", token])
    # The exit status lands in a file, so the host can tell a finished job from a killed one; a runner
    # that found the job already started (exit 3) must not overwrite the owner's.
    part, final = q(d + "/exit_status.part"), q(d + "/exit_status")
    inner = f"{run}; rc=$?; if [ $rc -ne {ALREADY_STARTED} ]; then echo $rc > {part} && mv {part} {final}; fi"
    # `;` not `&&` before the `&`: a backgrounded && list would be a subshell holding the SSH channel
    # open until the agent ends, and start() would block for the whole job. The log is appended to and
    # agent.pid kept (noclobber) so that a resend cannot clobber the first runner's.
    launch = (f"S=$(command -v setsid); PYTHONPATH={q(agent_dir)} $S nohup sh -c {q(inner)} "
              f">> {q(d + '/agent.log')} 2>&1 < /dev/null & P=$!; "
              f"(set -C; echo $P > {q(d + '/agent.pid')}) 2>/dev/null; echo started")
    return (f"cd {q(agent_dir)} || exit 1; "
            f"if [ ! -f {record} ]; then {launch}; "
            f"elif grep -qF {mine} {record}; "
            f"then echo following; "
            f"else echo \"already started by another host process: $(cat {record})\" >&2; "
            f"exit {ALREADY_STARTED}; fi")


def probe_command(d: str) -> str:
    """Prints `<status> <alive>`: status is the exit_status file's number, `none` when there is no file, `bad`
    when it is empty or not a number (power lost between the wrapper's write and its rename); alive is
    `running` or `gone`.

    The processes are checked first: a wrapper that ends between the two checks has renamed its file
    before it ended, so a finished job never reads as `none gone`. A zombie is not alive: an orphaned
    wrapper waits for init to reap it, which a container's init may never do.
    """
    status_file = shlex.quote(d + "/exit_status")
    return (f"a=gone; for p in {pids_of(d)}; do kill -0 $p 2>/dev/null && "
            f"[ \"$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)\" != Z ] && a=running; done; "
            f"if [ -f {status_file} ]; then s=$(head -c 64 {status_file} 2>/dev/null); "
            f"case $s in ''|*[!0-9]*) s=bad;; esac; else s=none; fi; echo \"$s $a\"")


def probe_verdict(status: str, alive: str) -> int | None:
    """What the probe's two words mean: the exit status, None while running, 255 for a job that ended
    without a valid status (killed: reboot, kill -9; or a damaged exit_status), whose collected lines are
    all there is."""
    if status.isdigit() and int(status) <= 255:
        return int(status)
    return None if alive == "running" else 255


def stop_command(d: str) -> str:
    """TERM to the job's processes. A wrapper leads its own session (setsid): TERM to its group reaches
    runner and worker, and TERM to each pid reaches the runner on boards without setsid."""
    return f"for p in {pids_of(d)}; do kill -TERM -- -$p 2>/dev/null; kill -TERM $p 2>/dev/null; done; true"
