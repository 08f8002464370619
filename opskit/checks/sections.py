"""Run several fixed commands on a host in ONE round trip, and split their output by section.

A check asks for sections by name (``"df"``, ``"ps"``, ``"gpu_query"``, ...). The names map
to fixed shell snippets below: no user input is ever pasted into the script. The script runs
as ``sh -c SCRIPT`` through the host's transport (local or SSH), with ``LC_ALL=C`` so that
numbers and headers do not depend on the host's locale. Each snippet runs in a subshell; its
stdout and stderr are framed by marker lines on both streams, and its exit status is recorded,
so one missing tool (``nvidia-smi``, ``docker``) never hides the other sections.

The exit status 127 means "command not found" (the snippets check with ``command -v``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opskit.errors import ParseError
from opskit.hosts.transport import Transport

MARK = "@@opskit-section:"
NOT_FOUND = 127

# Fields asked of nvidia-smi. Free-text fields (GPU name, process name) come LAST, so a
# comma inside them can never shift the other columns.
GPU_FIELDS = (
    "index", "uuid", "pci.bus_id", "driver_version", "temperature.gpu", "fan.speed",
    "utilization.gpu", "utilization.memory", "memory.used", "memory.total", "power.draw",
    "enforced.power.limit", "name",
)
GPU_APP_FIELDS = ("gpu_uuid", "pid", "used_gpu_memory", "process_name")

PS_COLUMNS = "pid,ppid,user:32,pcpu,pmem,rss,etimes,args"
DOCKER_DF_TIMEOUT = 10  # seconds; exit status 124 when it ran out


def _need(tool: str, command: str) -> str:
    """Run ``command`` when ``tool`` is installed, else say so and give status 127."""
    return f"if command -v {tool} >/dev/null 2>&1; then {command}; else _opskit_nf {tool}; fi"


# Helpers defined at the top of every script. Reading files with the shell's own ``read``
# (instead of ``cat``) and running snippets in ``{ }`` (instead of subshells) keeps the
# number of processes per snapshot small: on a busy host each fork counts.
PRELUDE = """export LC_ALL=C
_opskit_nf() { echo "$1: command not found" >&2; return 127; }
_opskit_show() {
  [ -r "$1" ] || { echo "$1: cannot read" >&2; return 1; }
  while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\\n' "$_l"; done < "$1"
}
"""

SNIPPETS: dict[str, str] = {
    "self": "echo $$",  # the script's shell: it and its children are opskit's own processes
    "hostname": "_opskit_show /proc/sys/kernel/hostname 2>/dev/null || hostname",
    "os_release": "_opskit_show /etc/os-release 2>/dev/null || _opskit_show /usr/lib/os-release",
    "uname": "uname -srm",
    "uptime": "_opskit_show /proc/uptime",
    "loadavg": "_opskit_show /proc/loadavg",
    # CPUs this shell may run on (what nproc counts), from its own /proc/self/status
    "nproc": "_f=; while read -r _k _v; do if [ \"$_k\" = Cpus_allowed_list: ]; then "
    "echo \"list $_v\"; _f=1; fi; done < /proc/self/status; "
    "[ -n \"$_f\" ] || echo \"count $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)\"",
    "cpu_model": "while IFS= read -r _l; do case $_l in 'model name'*) echo \"$_l\"; break;; "
    "esac; done < /proc/cpuinfo; true",
    "meminfo": "_opskit_show /proc/meminfo",
    "df": _need("df", "df -B1 -P -T"),
    "df_all": _need("df", "df -B1 -P -T -a"),
    "ps": _need("ps", f"ps -eww -o {PS_COLUMNS}"),
    "gpu_query": _need(
        "nvidia-smi",
        f"nvidia-smi --query-gpu={','.join(GPU_FIELDS)} --format=csv,noheader,nounits"),
    "gpu_apps": _need(
        "nvidia-smi", f"nvidia-smi --query-compute-apps={','.join(GPU_APP_FIELDS)} "
        "--format=csv,noheader,nounits"),
    # --version is cheap where supported (driver >= 525); older drivers: the plain table header.
    "gpu_version": _need("nvidia-smi", "nvidia-smi --version 2>/dev/null || nvidia-smi"),
    "docker_version": _need("docker", "docker version --format '{{json .}}'"),
    "docker_images": _need("docker", "docker image ls --quiet --no-trunc"),
    # system df sizes every layer and container: bounded so a busy engine cannot stall status
    "docker_df": _need(
        "docker", "if command -v timeout >/dev/null 2>&1; then "
        f"timeout {DOCKER_DF_TIMEOUT} docker system df --format '{{{{json .}}}}'; "
        "else docker system df --format '{{json .}}'; fi"),
}


@dataclass(frozen=True)
class Section:
    """What one snippet printed, and its exit status."""

    name: str
    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def not_found(self) -> bool:
        return self.exit_code == NOT_FOUND

    def message(self) -> str:
        """The first line of stderr (or stdout) for an error message."""
        for text in (self.stderr, self.stdout):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return f"exited with {self.exit_code}"


def build_script(names: Iterable[str]) -> str:
    """The fixed ``sh`` script that prints the given sections (names must be in SNIPPETS)."""
    parts = [PRELUDE]
    for name in names:
        snippet = SNIPPETS[name]  # KeyError for an unknown name: a programming error
        parts.append(
            f"echo '{MARK}begin {name}'; echo '{MARK}begin {name}' >&2\n"
            f"{{ {snippet}\n}}\n"
            f"rc=$?; echo; echo '{MARK}end {name}' \"$rc\"; echo >&2; echo '{MARK}end {name}' >&2"
        )
    return "\n".join(parts) + "\n"


def _split(host: str, text: str, stream: str) -> dict[str, tuple[str, int | None]]:
    """Marker-framed text -> {name: (body, exit_code or None)}."""
    out: dict[str, tuple[str, int | None]] = {}
    name: str | None = None
    body: list[str] = []
    for line in text.split("\n"):
        if line.startswith(MARK):
            words = line[len(MARK):].split()
            if words[:1] == ["begin"] and len(words) == 2 and name is None:
                name, body = words[1], []
                continue
            if words[:1] == ["end"] and len(words) >= 2 and words[1] == name:
                code = int(words[2]) if len(words) == 3 and words[2].isdigit() else None
                # One newline was printed before the end marker, so the lines between the
                # markers, joined, are exactly what the command printed.
                out[name] = ("\n".join(body), code)
                name = None
                continue
            raise ParseError(host, f"opskit section ({stream})", line, "unexpected marker")
        if name is not None:
            body.append(line)
        # Text outside any section (a login banner, a noisy shell rc file) is ignored.
    if name is not None:
        raise ParseError(host, f"opskit section ({stream})", f"{MARK}begin {name}", "no end marker")
    return out


def parse_sections(host: str, stdout: str, stderr: str) -> dict[str, Section]:
    """Split the script's two streams into Sections (pure; raises ParseError naming host)."""
    outs = _split(host, stdout, "stdout")
    errs = _split(host, stderr, "stderr") if MARK in stderr else {}
    result: dict[str, Section] = {}
    for name, (body, code) in outs.items():
        if code is None:
            raise ParseError(host, "opskit section (stdout)", f"{MARK}end {name}", "no exit status")
        result[name] = Section(name, body, errs.get(name, ("", None))[0], code)
    return result


def run_sections(transport: Transport, names: Iterable[str], *, timeout: float | None = None
                 ) -> dict[str, Section]:
    """Run the named snippets on the host in one ``sh -c`` call; return them by name."""
    names = list(dict.fromkeys(names))
    result = transport.run(["sh", "-c", build_script(names)], timeout=timeout)
    sections = parse_sections(transport.host, result.stdout, result.stderr)
    missing = [n for n in names if n not in sections]
    if missing:
        # The shell itself failed (no sh, killed, ...): report what it said.
        result.check(hint="opskit needs a POSIX sh on the host")
        raise ParseError(transport.host, "opskit section (stdout)", result.stdout[-200:],
                         f"sections missing: {', '.join(missing)}")
    return sections
