"""Run several fixed commands on a host in ONE round trip, and split their output by section.

A check asks for sections by name (``"df"``, ``"ps"``, ``"gpu_query"``, ...). The names map
to fixed shell snippets below: no user input is ever pasted into the script. The script is
sent on the standard input of ``sh -s`` through the host's transport (local or SSH), with
``LC_ALL=C`` so that numbers and headers do not depend on the host's locale.

Each snippet's stdout goes to one buffer, its stderr is captured beside it, and its exit
status is recorded, so one missing tool (``nvidia-smi``, ``docker``) never hides the others.
The whole answer is printed at the end in one piece, framed like this::

    @@opskit-section:begin NAME
    <what the snippet printed on stdout>
    @@opskit-section:stderr NAME        (only when it printed on stderr)
    <what it printed on stderr>
    @@opskit-section:end NAME EXIT_STATUS

``df`` (whose tool may wait out its whole limit on a dead network mount) runs in a background
subshell beside the other sections: a status takes as long as its longest section, not the sum.

Buffering matters: every small write would otherwise become an SSH packet that the client
decrypts and handles in Python (the fan-out benchmark counts client CPU per host).
The exit status 127 means "command not found" (the snippets check with ``command -v``).
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from opskit.errors import ParseError
from opskit.hosts.transport import Transport

MARK = "@@opskit-section:"
FILE_MOUNT = "@file "  # in the mounts section: the mount point that follows is not a folder
NOT_FOUND = 127

# Fields asked of nvidia-smi. Free-text fields (GPU name, process name) come LAST, so a
# comma inside them can never shift the other columns.
GPU_FIELDS = (
    "index", "uuid", "pci.bus_id", "driver_version", "temperature.gpu", "fan.speed",
    "utilization.gpu", "utilization.memory", "memory.used", "memory.total", "power.draw",
    "enforced.power.limit", "name",
)
GPU_APP_FIELDS = ("gpu_uuid", "pid", "used_gpu_memory", "process_name")

DRIVER_LOADED = "yet the NVIDIA driver is loaded"
# procps shows the uid instead of a name longer than 32 characters, whatever the column width:
# the long_users section maps those uids back to names (local accounts).
PS_COLUMNS = "pid,ppid,user:32,pcpu,pmem,rss,etimes,args"
# Every external tool runs under its own time limit on the host (coreutils or BusyBox
# ``timeout``, else a shell watchdog), so one hung tool (``df`` on a dead network mount, a GPU
# driver in trouble, a wedged engine) is killed THERE and costs only its own section. A
# section that ran out of time ends with one of TIMED_OUT_CODES (124 coreutils, 143 = SIGTERM
# from BusyBox timeout or the watchdog, 137 = SIGKILL).
DF_TIMEOUT = 10
PS_TIMEOUT = 10
DOCKER_TIMEOUT = 10
NVIDIA_SMI_TIMEOUT = 20
MOUNTS_TIMEOUT = 5
TIMED_OUT = 124
TIMED_OUT_CODES = frozenset({124, 137, 143})


def _bounded(seconds: int, command: str) -> str:
    """``command`` (a simple command: words only) killed on the host after ``seconds``."""
    return f"_opskit_limit {int(seconds)} {command}"


# Mount points strictly below these directories belong to a container engine's internals (one
# per container, thousands on a busy node): left out on the host, before a shell reads a line.
ENGINE_DIRS = (
    "/var/lib/docker/", "/var/lib/containerd/", "/run/containerd/", "/run/docker/",
    "/var/lib/containers/storage/", "/run/containers/storage/", "/var/lib/kubelet/pods/",
    "/run/k3s/containerd/", "/var/snap/docker/common/var-lib-docker/",
)


# Filesystem types whose stat may wait on a server, a daemon or a cluster lock (and autofs,
# whose mount points a stat may trigger): the mounts section never looks at their mount points.
MOUNT_NO_STAT = ("nfs*|cifs|smb*|fuse*|9p|ceph|glusterfs|lustre|afs|davfs|autofs|virtiofs|vboxsf|"
                 "gpfs|beegfs|orangefs|pvfs2|ocfs2|gfs2|coda|ncpfs")


def _engine_pattern(field: int = 0) -> str:
    """An ERE for the mount-table lines that name an engine's folder (in field ``field``
    when given, else in any field)."""
    dirs = "(" + "|".join(d.replace(".", "\\.") for d in ENGINE_DIRS) + ")"
    return f"^([^ ]+ ){{{field - 1}}}{dirs}" if field else f" {dirs}"


def _without_engine_mounts(path: str, show: str = "_opskit_show") -> str:
    """The lines of a mount table (``/proc/self/mounts`` or ``mountinfo``) without the
    engines' own mounts (named in any field): grep where the host has it (a shell reads such
    tables a byte at a time), else every line."""
    return (f"if command -v grep >/dev/null 2>&1; then grep -Ev '{_engine_pattern()}' {path}; "
            f"else {show} {path}; fi")


def _mounts_snippet() -> str:
    """The one-pass ``mounts`` section (see SNIPPETS), run in the script's own shell: ONE grep
    reads the mountinfo table (engines' mounts left out) and the passwd lines of users whose
    names are longer than ps can show (kept in ``$_opskit_lu`` for the ``long_users`` section
    that follows, which then starts no grep of its own). The answer is split on newlines in
    the shell (where there is no grep, the shell reads the table itself); a line naming an
    engine's folder in any field is not printed (a container's /etc/hosts is one: its root is
    in the engine's folder), and each bind mount of a part of a filesystem of a type that may
    be looked at is tested for being a folder."""
    engine = "|".join(f'*" {d}"*' for d in ENGINE_DIRS)
    info = "/proc/self/mountinfo"
    return (
        "if command -v grep >/dev/null 2>&1; then\n"
        f"  if [ -r /etc/passwd ]; then set -- {info} /etc/passwd; else set -- {info}; fi\n"
        # -v: neither an engine's mount nor a passwd line with a short name (a mountinfo line
        # has a space before its first colon, so never matches the second pattern)
        f"  _o=$(grep -HvE -e '{_engine_pattern(5)}' -e '^[^: ]{{0,32}}:' \"$@\"); _r=$?\n"
        '  [ $_r -gt 1 ] || [ $# = 1 ] || _opskit_lu_ok=1\n'
        f"else _o=$(_opskit_show {info}); _r=$?; fi\n"
        "set -f; IFS='\n'\n"
        "for _l in $_o; do\n"
        "  case $_l in /etc/passwd:*) _opskit_lu=\"$_opskit_lu${_l#/etc/passwd:}\n\"; continue;; "
        f"{info}:*) _l=${{_l#{info}:}};; esac\n"
        f"  case \" $_l\" in {engine}) ;; *) printf '%s\\n' \"$_l\";; esac\n"
        "  IFS=' '; set -- $_l; IFS='\n'\n"
        '  [ "$4" != / ] || continue\n'
        "  _t=${_l#* - }\n"
        f"  case ${{_t%% *}} in {MOUNT_NO_STAT}) continue;; esac\n"
        f'  [ -d "$5" ] || [ ! -e "$5" ] || printf \'{FILE_MOUNT}%s\\n\' "$5"\n'
        "done\n"
        "set +f; IFS=' \t\n'; set --; [ $_r -le 1 ]"
    )


@dataclass(frozen=True)
class Needs:
    """A snippet that runs only where ``tool`` is installed. Where it is not, the section says
    ``TOOL: command not found`` (plus ``note`` when the shell test ``note_if`` holds) with
    status 127, decided by the script's own shell: no subshell, no process. On a host without
    GPUs or Docker that is six sections of the status script. ``when`` (a shell test): the
    section runs only if it holds, else it is empty with status 0."""

    tool: str
    command: str
    note_if: str = ""
    note: str = ""
    when: str = ""

    def missing(self) -> str:
        """Shell that sets ``_e`` and ``_rc`` as the snippet would on a host without the tool."""
        text = shlex.quote(f"{self.tool}: command not found")
        note = (f"; if {self.note_if}; then _e=\"$_e\"{shlex.quote(', ' + self.note)}; fi"
                if self.note_if else "")
        return f"_e={text}{note}; _rc={NOT_FOUND}"


def _need(tool: str, command: str) -> Needs:
    """Run ``command`` when ``tool`` is installed, else say so and give status 127."""
    return Needs(tool, command)


# Helpers defined at the top of every script. Reading files with the shell's own ``read``
# (instead of ``cat``) and running snippets in ``{ }`` (instead of subshells) keeps the number
# of processes per snapshot small: on a busy host each fork counts. ``_opskit_show FILE
# [PREFIX]`` prints FILE, up to the first line that starts with PREFIX when one is given.
PRELUDE = """export LC_ALL=C
_opskit_lu= _opskit_lu_ok=
_opskit_nf() { echo "$1: command not found${2:+, $2}" >&2; return 127; }
_opskit_limit() {
  if command -v timeout >/dev/null 2>&1; then timeout "$@"; return; fi
  _opskit_s=$1; shift
  "$@" & _opskit_p=$!
  ( _n=0; while [ $_n -lt $_opskit_s ] && kill -0 $_opskit_p 2>/dev/null; do
      sleep 1; _n=$((_n + 1)); done
    kill -TERM $_opskit_p 2>/dev/null; sleep 2; kill -KILL $_opskit_p 2>/dev/null
  ) >/dev/null 2>&1 </dev/null &
  _opskit_w=$!
  wait $_opskit_p; _opskit_r=$?
  kill $_opskit_w 2>/dev/null; wait $_opskit_w 2>/dev/null
  return $_opskit_r
}
_opskit_show() {
  [ -r "$1" ] || { echo "$1: cannot read" >&2; return 1; }
  while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\\n' "$_l"
    [ -z "${2:-}" ] || case $_l in "$2"*) break;; esac; done < "$1"
}
"""

SNIPPETS: dict[str, str | Needs] = {
    "self": "echo $$",  # the script's shell: it and its children are opskit's own processes
    "hostname": "_opskit_show /proc/sys/kernel/hostname 2>/dev/null || hostname",
    "os_release": "_opskit_show /etc/os-release 2>/dev/null || _opskit_show /usr/lib/os-release",
    # uname -srm from /proc where the kernel has /proc/sys/kernel/arch (Linux >= 6.1): no process
    "uname": "if [ -r /proc/sys/kernel/arch ] && read -r _s < /proc/sys/kernel/ostype && "
    "read -r _r < /proc/sys/kernel/osrelease && read -r _m < /proc/sys/kernel/arch; then "
    "echo \"$_s $_r $_m\"; else uname -srm; fi",
    "uptime": "_opskit_show /proc/uptime",
    "loadavg": "_opskit_show /proc/loadavg",
    # CPUs this shell may run on (what nproc counts), from its own /proc/self/status
    "nproc": "_f=; while read -r _k _v; do if [ \"$_k\" = Cpus_allowed_list: ]; then "
    "echo \"list $_v\"; _f=1; break; fi; done < /proc/self/status; "
    "[ -n \"$_f\" ] || echo \"count $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)\"",
    "cpu_model": "while IFS= read -r _l; do case $_l in 'model name'*) echo \"$_l\"; break;; "
    "esac; done < /proc/cpuinfo; true",
    # up to SwapFree: all that is read of it (the shell reads a byte at a time; 2/3 of it left)
    "meminfo": "_opskit_show /proc/meminfo SwapFree:",
    "df": _need("df", _bounded(DF_TIMEOUT, "df -B1 -P -T")),
    "df_all": _need("df", _bounded(DF_TIMEOUT, "df -B1 -P -T -a")),
    # Mount points that are single files (Docker's /etc/hosts & co.): not disks. A child sh
    # under a limit, and network filesystems are not looked at (a stat there can hang).
    "file_mounts": _bounded(MOUNTS_TIMEOUT, "sh -c " + shlex.quote(
        _without_engine_mounts("/proc/self/mounts", show="cat")  # a child sh: no helpers
        + ' | while read -r _s _m _t _r; do case $_t in nfs*|cifs|smb*|fuse*|9p|ceph|glusterfs|'
        'lustre|afs|davfs) continue;; esac; [ -d "$_m" ] || [ ! -e "$_m" ] || '
        'printf "%s\\n" "$_m"; done')),
    # Mount ids, devices and roots: what GNU df uses to show each filesystem once.
    "mountinfo": _without_engine_mounts("/proc/self/mountinfo"),
    # Both of the above in one pass (what status and df ask for): mountinfo lines as the
    # mountinfo section prints them, and FILE_MOUNT + each mount point that is not a folder,
    # as file_mounts finds them. No process but grep (~1.3 ms of host CPU, where the old child
    # sh + timeout + a byte-at-a-time read loop took ~5.7 ms: each status pays it, sixteen
    # hosts at once): the table is read whole into the section's own shell, then split on
    # newlines. Only bind mounts of a part of a filesystem (root field not "/": a
    # filesystem's own root is always a folder) are looked at, and none of a type whose stat
    # can wait on a server or a daemon (MOUNT_NO_STAT): a local mount point's inode is held
    # in memory by the mount itself, so its stat needs no I/O and no time limit.
    "mounts": _mounts_snippet(),
    # passwd lines of local users whose names are longer than ps can show (32 characters)
    # (already read by the mounts section where it ran before, with grep: printed from there)
    "long_users": "if [ -n \"$_opskit_lu_ok\" ]; then printf '%s' \"$_opskit_lu\"; "
    "elif command -v grep >/dev/null 2>&1; then grep -E '^[^:]{33,}:' /etc/passwd; "
    "else while IFS= read -r _l; do case ${_l%%:*} in " + "?" * 33 + "*) "
    "printf '%s\\n' \"$_l\";; esac; done < /etc/passwd; fi; true",
    "ps": _need("ps", _bounded(PS_TIMEOUT, f"ps -eww -o {PS_COLUMNS}")),
    "gpu_query": Needs(
        "nvidia-smi", _bounded(NVIDIA_SMI_TIMEOUT, f"nvidia-smi --query-gpu={','.join(GPU_FIELDS)}"
                               " --format=csv,noheader,nounits"),
        note_if="[ -e /proc/driver/nvidia/version ] || [ -e /dev/nvidiactl ]", note=DRIVER_LOADED),
    "gpu_apps": _need("nvidia-smi", _bounded(
        NVIDIA_SMI_TIMEOUT, f"nvidia-smi --query-compute-apps={','.join(GPU_APP_FIELDS)} "
        "--format=csv,noheader,nounits")),
    # --version is cheap where supported (driver >= 525); older drivers: the plain table header.
    "gpu_version": _need("nvidia-smi", _bounded(NVIDIA_SMI_TIMEOUT, "nvidia-smi --version")
                         + " 2>/dev/null || " + _bounded(NVIDIA_SMI_TIMEOUT, "nvidia-smi")),
    "docker_version": _need("docker", _bounded(DOCKER_TIMEOUT,
                                               "docker version --format '{{json .}}'")),
    # only where docker system df (run before it) failed: each docker CLI start costs the host
    # ~15 ms of CPU, and system df already counts the images
    "docker_images": Needs("docker", _bounded(DOCKER_TIMEOUT, "docker image ls --quiet --no-trunc"),
                           when='[ "${_opskit_rc_docker_df:-1}" != 0 ]'),
    # system df sizes every layer and container: slow on a busy engine
    "docker_df": _need("docker", _bounded(DOCKER_TIMEOUT,
                                          "docker system df --format '{{json .}}'")),
    # What a run needs besides the snapshot (opskit.checks.facts): the login user, the engine
    # as that user sees it, free space where the engine keeps images and in $HOME, and the
    # NVIDIA container hook.
    "ident": 'id -u; id -g; printf \'%s\\n\' "$HOME"',
    "docker_info": _need("docker", _bounded(DOCKER_TIMEOUT, "docker info --format '{{json .}}'")),
    "run_disks": "_d=$(" + _bounded(DOCKER_TIMEOUT, "docker info --format '{{.DockerRootDir}}'")
    + " 2>/dev/null) || _d=; _d=${_d:-/var/lib/docker}; "
    "printf '@root %s\\n' \"$_d\"; " + _bounded(DF_TIMEOUT, 'df -P -B1 -- "$_d"')
    + "; printf '@home %s\\n' \"$HOME\"; " + _bounded(DF_TIMEOUT, 'df -P -B1 -- "$HOME"'),
    "nvidia_hook": "for _p in nvidia-container-runtime-hook nvidia-container-toolkit "
    'nvidia-container-runtime; do command -v "$_p" && break; done; true',
}


# Sections made of shell builtins reading /proc (plus uname, and mounts' one grep): they say
# nothing useful on stderr, so theirs is dropped instead of captured (their exit status still
# tells); they run in the script's own shell, with no subshell to capture it.
QUIET = frozenset({"self", "hostname", "os_release", "uname", "uptime", "loadavg", "nproc",
                   "cpu_model", "meminfo", "mountinfo", "long_users", "mounts"})


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


def _run_line(name: str, snippet: str | Needs) -> str:
    """The shell that runs one section's snippet, leaving its stderr in ``$_e`` and its exit
    status in ``$_rc`` (and ``$_opskit_rc_NAME``); its stdout goes to fd 3, the buffer."""
    if isinstance(snippet, str) and name in QUIET:  # no subshell: one fork less on the host
        return f"{{ {snippet}\n}} 2>/dev/null </dev/null; _rc=$?; _e="
    command = snippet.command if isinstance(snippet, Needs) else snippet
    # stdout -> fd 3 (the buffer), stderr -> $_e; stdin never the script's
    run = f"_e=$({{ {command}\n}} 2>&1 >&3 3>&- </dev/null); _rc=$?"
    if isinstance(snippet, Needs):
        run = (f"if command -v {snippet.tool} >/dev/null 2>&1; then {run}; "
               f"else {snippet.missing()}; fi")
        if snippet.when:
            run = f"if {snippet.when}; then {run}; else _e=; _rc=0; fi"
    return f"{run}; _opskit_rc_{name}=$_rc"


# Sections whose tool may wait out its whole limit (df on a dead network mount): they run in a
# background subshell beside the others, so a status takes as long as its longest section, not
# the sum. Their block is printed first, whole; the other block once it has been (``wait``).
BESIDE = frozenset({"df", "df_all"})


def _body(function: str, snippets: list[tuple[str, str | Needs]]) -> list[str]:
    """A shell function printing the framed sections (stdout on fd 3)."""
    parts = [f"{function}() {{"]
    for name, snippet in snippets:
        run = _run_line(name, snippet)
        parts.append(
            f"printf '%s\\n' '{MARK}begin {name}'\n{run}\n"
            f"[ -z \"$_e\" ] || printf '\\n%s\\n%s' '{MARK}stderr {name}' \"$_e\"\n"
            f"printf '\\n%s %s\\n' '{MARK}end {name}' \"$_rc\""
        )
    parts.append("}")
    return parts


def build_script(names: Iterable[str]) -> str:
    """The fixed ``sh`` script that prints the given sections (names must be in SNIPPETS),
    made once per set of snippets (a fan-out asks for the same script on every host)."""
    names = tuple(names)
    return _script(tuple((n, SNIPPETS[n]) for n in names))  # KeyError: unknown name, a bug


@functools.lru_cache(maxsize=32)
def _script(snippets: tuple[tuple[str, str | Needs], ...]) -> str:
    beside = [(n, snippet) for n, snippet in snippets if n in BESIDE]
    if len(beside) == len(snippets):  # nothing to run beside them
        beside = []
    parts = [PRELUDE, *_body("_opskit_body", [x for x in snippets if x not in beside])]
    end = "_opskit_out=$(_opskit_body 3>&1); printf '%s\\n' \"$_opskit_out\""
    if beside:
        parts += _body("_opskit_beside", beside)
        parts.append("( _opskit_o=$(_opskit_beside 3>&1); printf '%s\\n' \"$_opskit_o\" ) &")
        end = end.replace("; printf", "; wait; printf")
    parts.append(end)
    return "\n".join(parts) + "\n"


def parse_sections(host: str, stdout: str, stderr: str = "") -> dict[str, Section]:
    """Split the script's output into Sections (pure; raises ParseError naming the host).

    Text outside any section (a login banner, a noisy shell rc file) is ignored; ``stderr``
    (the shell's own complaints) is kept for error messages only. A newline is printed before
    each marker, so the text between two marker lines is exactly what the command printed:
    it is cut out whole, marker to marker, not line by line."""
    result: dict[str, Section] = {}
    text, sep = "\n" + stdout, "\n" + MARK
    name: str | None = None
    out: str | None = None  # the section's stdout, once its stderr marker was seen
    start = 0  # where the text after the last marker line begins
    pos = text.find(sep)
    while pos != -1:
        chunk = text[start:pos]
        eol = text.find("\n", pos + 1)
        eol = len(text) if eol == -1 else eol
        line = text[pos + 1:eol]
        words = line[len(MARK):].split()
        if words[:1] == ["begin"] and len(words) == 2 and name is None:
            name, out = words[1], None
        elif words[:1] == ["stderr"] and words[1:] == [name] and out is None:
            out = chunk
        elif words[:1] == ["end"] and len(words) == 3 and words[1] == name and words[2].isdigit():
            stdout_text, stderr_text = (chunk, "") if out is None else (out, chunk)
            result[name] = Section(name, stdout_text, stderr_text, int(words[2]))
            name = None
        else:
            raise ParseError(host, "opskit section", line, "unexpected marker")
        start = eol + 1
        pos = text.find(sep, eol)
    if name is not None:
        raise ParseError(host, "opskit section", f"{MARK}begin {name}", "no end marker")
    return result


def run_sections(transport: Transport, names: Iterable[str], *, timeout: float | None = None
                 ) -> dict[str, Section]:
    """Run the named snippets on the host in one ``sh -s`` call; return them by name."""
    names = list(dict.fromkeys(names))
    result = transport.run(["sh", "-s"], stdin=build_script(names).encode(), timeout=timeout)
    sections = parse_sections(transport.host, result.stdout, result.stderr)
    missing = [n for n in names if n not in sections]
    if missing:
        # The shell itself failed (no sh, killed, ...): report what it said.
        result.check(hint="opskit needs a POSIX sh on the host")
        raise ParseError(transport.host, "opskit section", (result.stderr or result.stdout)[-200:],
                         f"sections missing: {', '.join(missing)}")
    return sections
