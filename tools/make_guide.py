#!/usr/bin/env python3
"""make_guide.py — run the experiments of docs/guide.md and write their outputs into it.

The guide's prose is written by hand; each experiment's commands live in the
guide itself, in a marker, and everything between that marker and its end
marker is generated:

    <!-- experiment NAME
    $ build/gilvm scripts/io_bound.lua 3 0.5
    $ build/gilvm -q --svg docs/guide/NAME.svg scripts/io_bound.lua 3 0.5
    status 0
    -->
    ... generated: how it ran, each command, what it printed (stdout, then stderr), the pictures ...
    <!-- end NAME -->

`status N` (optional) is the exit status every command must end with (0 by
default): a command that ends otherwise stops the script. A `--svg FILE`
picture is linked below the outputs. The block between `<!-- machine -->` and
`<!-- end machine -->` names the machine, the date and the load.

How each experiment runs is said here, in HOW: "sim" runs its commands under
`gilvm --sim 2` (virtual time: the same output on every machine and every
run); any other word is why it must be a real run (REAL_BECAUSE, which the
guide prints above its output). Moving an experiment to --sim, once gilvm
simulates what it needs, is changing its word to "sim" and regenerating.

    tools/make_guide.py [--gilvm build/gilvm] [--wait-idle S]  rewrite docs/guide.md and docs/guide/*.svg
                                                      (and remove pictures no experiment draws)

Other load changes every real timing, so before each real experiment the
generator waits (up to --wait-idle seconds, 120 by default) for a second in
which the CPUs were at least 90% idle, and writes into the guide how idle
they were.

    tools/make_guide.py --check [--gilvm PATH] [--guide FILE] [--only NAME,...]

--check runs every command again (from a mirror of the repository whose
docs/guide/ is a temporary folder: the same words, so the same bytes copied) and
compares it with the guide. A simulated experiment must match exactly: each
command's stdout and stderr byte for byte, and its pictures byte for byte
with docs/guide/'s, except the host's own figures (the report's "host, not
simulated" line and compare's "peak mem" column: real time and memory, which
gilvm prints beside the simulation). A real run is compared on what does not
depend on timing: the commands, each exit status, and its stdout with every
number masked and lines in any order (workers print in the scheduler's
order). Then the set of pictures: each one the guide links exists in
docs/guide/, and no other file is there. It prints which experiment is stale
and exits 1; 0 when all agree. --only checks just the experiments named.
"""
import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = re.compile(r"<!-- experiment ([a-z0-9-]+)\n(.*?)-->\n", re.S)
MACHINE = re.compile(r"(<!-- machine -->\n)(.*?)(<!-- end machine -->)", re.S)

SIM_CORES = 2

# How each experiment runs: "sim" (under `--sim 2`, reproducible byte for
# byte), or the word in REAL_BECAUSE that says why it is a real run. To move
# an experiment to --sim once gilvm simulates what it needs: change its word
# to "sim", run tools/make_guide.py, read the new output against the lesson.
HOW = {
    "threads-io": "sim",
    "downloads": "sim",
    "cpu-threads-processes": "sim",
    "convoy": "sim",
    "iopri": "sim",
    "race": "sim",
    "dis": "sim",
    "dis-legacy": "sim",
    "locks": "sim",
    "value-cost": "sharing",
    "pools": "sim",
    "queues-pipes": "sim",
    "copying": "sim",
    "legacy": "sim",
    "fifo": "sim",
    "deadlock": "sim",
    "hybrid": "sim",
    "sim-cores": "sim",
}

REAL_BECAUSE = {
    "sharing": ("its lesson is what synchronising a shared value costs on real cores: under `--sim 2` "
                "a shared add costs its instructions and the `object` cost, 4x counting locally in every "
                "mode, but not two cores contending for one value (for real, nogil and fork pay 9-14x)"),
}


def how(name):
    word = HOW.get(name)
    if word is None:
        sys.exit(f"make_guide: experiment {name} is not in HOW (say \"sim\" or why it runs for real)")
    if word != "sim" and word not in REAL_BECAUSE:
        sys.exit(f"make_guide: experiment {name}: '{word}' is neither \"sim\" nor in REAL_BECAUSE")
    return word


def parse_spec(name, spec):
    cmds, status = [], 0
    for line in spec.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            cmds.append(line[2:])
        elif line.startswith("status "):
            status = int(line.split()[1])
        elif line:
            sys.exit(f"make_guide: experiment {name}: cannot read '{line}'")
    if not cmds:
        sys.exit(f"make_guide: experiment {name} has no command")
    return cmds, status


def shown(cmd, sim):
    """The command as run and shown: a simulated experiment's runs get --sim (after
    `compare`/`sweep`, which pass it on); `dis` runs nothing, and a command that
    names its own --sim keeps it."""
    words = cmd.split(" ")
    if not sim or "--sim" in words or "dis" in words[1:2]:
        return cmd
    at = 2 if words[1:2] in (["compare"], ["sweep"]) else 1
    return " ".join(words[:at] + ["--sim", str(SIM_CORES)] + words[at:])


def experiments(text):
    """(name, commands as run, status, sim?, start of generated text, end of it) for each experiment."""
    out = []
    for m in BEGIN.finditer(text):
        name = m.group(1)
        end = text.find(f"<!-- end {name} -->", m.end())
        if end < 0:
            sys.exit(f"make_guide: experiment {name} has no '<!-- end {name} -->'")
        cmds, status = parse_spec(name, m.group(2))
        sim = how(name) == "sim"
        out.append((name, [shown(c, sim) for c in cmds], status, sim, m.end(), end))
    names = [e[0] for e in out]
    for name in HOW:
        if name not in names:
            sys.exit(f"make_guide: HOW names an experiment the guide lacks: {name}")
    return out


def svg_of(cmd):
    words = shlex.split(cmd)
    return words[words.index("--svg") + 1] if "--svg" in words else None


def run(cmd, gilvm, root=ROOT):
    """Run one guide command from the repository root (or from a mirror of it,
    mirror()): (status, stdout, stderr)."""
    words = shlex.split(cmd)
    if words[0] != "build/gilvm":
        sys.exit(f"make_guide: '{cmd}' does not run build/gilvm")
    # argv[0] stays "build/gilvm", whichever binary runs, and so do the other words (the
    # --svg path too): the script sees them (arg), and nogil workers and processes get a
    # copy of them, so the bytes copied (and under --sim their cost) would depend on them
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1")
    p = subprocess.run(words, executable=gilvm, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def head(name, sim, idle):
    """The block's first line: how the experiment ran (a real run says why)."""
    if sim:
        return (f"Simulated (`--sim {SIM_CORES}`: {SIM_CORES} virtual cores, virtual time): this output is "
                "the same on every machine and every run, but for the host's real time and memory.\n")
    return (f"A real run, because {REAL_BECAUSE[how(name)]}: its numbers are this machine's. "
            f"The CPUs were {idle * 100:.0f}% idle in the second before it ran.\n")


def block(name, sim, cmds, results, idle):
    parts = [head(name, sim, idle)]
    for cmd, (_, out, err) in zip(cmds, results):
        body = (out + err).rstrip("\n")
        parts.append("```\n$ " + cmd + "\n" + body + "\n```\n")
    for cmd in cmds:
        svg = svg_of(cmd)
        if svg:
            rel = os.path.relpath(os.path.join(ROOT, svg), os.path.join(ROOT, "docs"))
            parts.append(f"\n![{os.path.basename(svg)}]({rel})\n")
    return "\n" + "\n".join(parts) + "\n"


def machine_line():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return (f"Generated by `tools/make_guide.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
            f"{os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}, 1-minute load average "
            f"{load:.2f} before the run.\n")


def idle_share(seconds=1.0):
    """The share of all CPUs' time that was idle over the next `seconds` (/proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = sample()
    time.sleep(seconds)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


def wait_idle(patience, want=0.9):
    """Wait (up to patience seconds) for a second in which the CPUs were mostly idle:
    other load shows in every timing. Returns the last idle share measured."""
    deadline = time.monotonic() + patience
    idle = idle_share()
    while idle < want and time.monotonic() < deadline:
        idle = idle_share()
    return idle


NUM = re.compile(r"0x[0-9a-fA-F]+|[-+]?\d+(\.\d+)?(e[-+]?\d+)?")


# Lines that depend on how gilvm was built, not on the script: a ThreadSanitizer
# build polls for drop requests and `gilvm dis` says so (the guide is made
# with a plain build).
BUILD_LINES = re.compile(r"this gilvm polls for requests")

# The host's own figures in a simulated run (gilvm prints them beside the
# simulation, and says they are the machine's): the report's real time and
# peak memory, and compare's "peak mem" column (the number before the exit).
HOST = [re.compile(r"(host, not simulated: real time )[^,]*(, peak memory )[^)]*(\))"),
        re.compile(r"^(  (?:gil|nogil|fork) .* )\d+\.\d MB(\s+-?\d+)$")]


def masked_lines(text):
    return sorted(" ".join(NUM.sub("#", line).split()) for line in text.splitlines()
                  if not BUILD_LINES.search(line))


def without_host(text):
    """A simulated run's text, its host figures blanked: the rest must match byte for byte."""
    lines = []
    for line in text.splitlines():
        if BUILD_LINES.search(line):
            continue
        for h in HOST:
            line = h.sub(lambda m: "(host)".join(m.groups()), line)
        lines.append(line)
    return "\n".join(lines)


def generated_outputs(generated, cmds):
    """Each command's text in a generated block (what followed '$ cmd' in its fence)."""
    outs = []
    for cmd in cmds:
        start = generated.find("```\n$ " + cmd + "\n")
        if start < 0:
            outs.append(None)
            continue
        start += len("```\n$ " + cmd + "\n")
        end = generated.find("\n```", start - 1)
        outs.append(generated[start:end + 1] if end >= 0 else None)
    return outs


def first_difference(a, b):
    la, lb = a.splitlines(), b.splitlines()
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else "(no such line)"
        y = lb[i] if i < len(lb) else "(no such line)"
        if x != y:
            return f"line {i + 1}:\n--- guide ---\n{x}\n--- now ---\n{y}"
    return "(the same lines)"


def mirror(tmp):
    """A stand-in for the repository root in tmp: a link to each of its entries but
    docs/guide/, an empty folder, so that the check runs the very commands (the same
    words, the same relative --svg path) and its pictures land in tmp."""
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "docs", "guide"))
    for folder, own in (("", "docs"), ("docs", "guide")):  # each with the entry made above
        for entry in os.listdir(os.path.join(ROOT, folder)):
            if entry != own:
                os.symlink(os.path.join(ROOT, folder, entry), os.path.join(root, folder, entry))
    return root


def check_one(name, cmds, status, sim, generated, gilvm, tmp, linked, pics):
    """Why the experiment is stale, or None."""
    linked.update(os.path.normpath(svg_of(c)) for c in cmds if svg_of(c))
    said = head(name, sim, 0).split(" The CPUs were")[0]
    if not generated.startswith("\n" + said):
        return f"it should say '{said.strip()}' (it is {'simulated' if sim else 'a real run'} now)"
    outs = generated_outputs(generated, cmds)
    for k, cmd in enumerate(cmds):
        svg = svg_of(cmd)
        if svg:
            if f"]({os.path.relpath(svg, 'docs')})" not in generated:
                return f"the picture {svg} is not linked"
            if not os.path.isfile(picture(pics, svg)):
                return f"the picture {svg} is missing"
        if outs[k] is None:
            return f"command {k + 1} ('{cmd}') has no output in the guide"
        rc, out, err = run(cmd, gilvm, tmp)
        if rc != status:
            return f"'{cmd}' now exits {rc}, not {status}:\n{err[-2000:]}"
        drawn = os.path.join(tmp, svg) if svg else None
        if svg and not open(drawn).read(200).lstrip().startswith("<"):
            return f"'{cmd}' wrote no SVG"
        if sim:
            have, now = without_host(outs[k]), without_host((out + err).rstrip("\n") + "\n")
            if have != now:
                return f"'{cmd}' (simulated) now prints something else, {first_difference(have, now)}"
            if svg:
                with open(drawn, "rb") as now_svg, open(picture(pics, svg), "rb") as guide_svg:
                    if now_svg.read() != guide_svg.read():
                        return f"'{cmd}' (simulated) now draws another {svg}"
        else:
            have = outs[k].splitlines()[:len(out.splitlines())]
            if masked_lines("\n".join(have)) != masked_lines(out):
                return (f"'{cmd}' now prints (numbers aside) something else:\n--- guide ---\n"
                        + "\n".join(have) + "\n--- now ---\n" + out)
    return None


def picture(pics, svg):
    """Where the guide's picture svg (docs/guide/NAME.svg in its command) is."""
    return os.path.join(pics, os.path.basename(svg))


def check(text, gilvm, only, pics):
    stale = []
    if not MACHINE.search(text):
        stale.append("the guide has no '<!-- machine -->' block")
    linked = set()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = mirror(scratch)
        for name, cmds, status, sim, start, end in experiments(text):
            if only and name not in only:
                linked.update(os.path.normpath(svg_of(c)) for c in cmds if svg_of(c))
                continue
            why = check_one(name, cmds, status, sim, text[start:end], gilvm, tmp, linked, pics)
            if why:
                stale.append(f"experiment '{name}' is stale: {why}")
    if os.path.isdir(pics):
        for f in sorted(os.listdir(pics)):
            if os.path.normpath(os.path.join("docs", "guide", f)) not in linked:
                stale.append(f"docs/guide/{f} belongs to no experiment")
    return stale


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gilvm", default=os.path.join(ROOT, "build", "gilvm"))
    ap.add_argument("--guide", default=os.path.join(ROOT, "docs", "guide.md"))
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", default="", metavar="NAME,...", help="with --check: only these experiments")
    ap.add_argument("--wait-idle", type=float, default=120, metavar="SECONDS",
                    help="before each real experiment, wait up to SECONDS for the CPUs to be 90%% idle (default 120)")
    a = ap.parse_args()
    gilvm = os.path.abspath(a.gilvm)
    with open(a.guide) as f:
        text = f.read()
    if a.check:
        only = set(filter(None, a.only.split(",")))
        unknown = only - {e[0] for e in experiments(text)}
        if unknown:
            sys.exit(f"make_guide: --only: no experiment named {', '.join(sorted(unknown))}")
        # the pictures beside the guide: docs/guide/ for docs/guide.md
        pics = os.path.join(os.path.dirname(os.path.abspath(a.guide)), "guide")
        stale = check(text, gilvm, only, pics)
        for s in stale:
            print(f"{os.path.relpath(a.guide, ROOT)}: {s}", file=sys.stderr)
        if stale:
            print("regenerate with: tools/make_guide.py", file=sys.stderr)
            return 1
        n = len(only) if only else len(experiments(text))
        print(f"{os.path.relpath(a.guide, ROOT)}: {n} experiments up to date")
        return 0
    os.makedirs(os.path.join(ROOT, "docs", "guide"), exist_ok=True)
    machine = machine_line()  # the load before the runs
    pieces, at = [], 0
    for name, cmds, status, sim, start, end in experiments(text):
        idle = None if sim else wait_idle(a.wait_idle)
        print(f"make_guide: {name} " + ("(simulated)" if sim else f"({idle * 100:.0f}% idle before)"),
              file=sys.stderr)
        results = []
        for cmd in cmds:
            rc, out, err = run(cmd, gilvm)
            if rc != status:
                sys.exit(f"make_guide: experiment {name}: '{cmd}' exited {rc}, not {status}:\n{err}")
            results.append((rc, out, err))
        pieces += [text[at:start], block(name, sim, cmds, results, idle)]
        at = end
    pieces.append(text[at:])
    text = "".join(pieces)
    m = MACHINE.search(text)
    if m:
        text = text[:m.start(2)] + machine + text[m.end(2):]
    with open(a.guide, "w") as f:
        f.write(text)
    # a picture no experiment draws any more would only mislead
    keep = {os.path.basename(svg_of(c)) for _, cmds, _, _, _, _ in experiments(text) for c in cmds if svg_of(c)}
    for f in os.listdir(os.path.join(ROOT, "docs", "guide")):
        if f not in keep:
            os.remove(os.path.join(ROOT, "docs", "guide", f))
            print(f"make_guide: removed docs/guide/{f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
