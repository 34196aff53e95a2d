#!/usr/bin/env python3
"""Stand-in SLURM client commands for tests (no cluster needed).

Every command in this folder (`sbatch`, `srun`, `sacct`, `squeue`, `sinfo`, `scontrol`,
`sacctmgr`, `sshare`, `scancel`) is a two-line shell wrapper around this file. Each call is
appended as one JSON object per line to the file named by `FAKE_SLURM_LOG`:

    {"cmd": "sbatch", "argv": [...], "stdin": "<script or null>", "cwd": "...",
     "options": {"partition": "gpu", ...}, "jobid": "1001"}

`sbatch` runs the job *synchronously* (`--wrap` command, or the script on stdin / in a file)
with the environment a SLURM job would see (SLURM_JOB_ID, SLURM_GPUS, ...), writes its output
to `--output` (`%j` replaced), records COMPLETED or FAILED, then prints the job id. With
`--array`, every task runs in turn with its SLURM_ARRAY_TASK_ID (and _MIN, _MAX) and is recorded
as `<job>_<task>`, as SLURM reports array tasks. `sacct` and
`squeue` report the recorded states; `srun` drops its options and runs the command.

Environment:
    FAKE_SLURM_LOG         JSON-lines call log (default: $TMPDIR/fake_slurm-<uid>/calls.jsonl)
    FAKE_SLURM_STATE       folder for job states and scripts (default: <log>.state)
    FAKE_SLURM_RUN         "0": record submissions without running them (state COMPLETED)
    FAKE_SLURM_ACCOUNTS    comma-separated accounts that sacctmgr/sshare report (default: none,
                           which makes the plugin skip account validation)
    FAKE_SLURM_PARTITIONS  comma-separated partitions for sinfo, default marked with * ("cpu*,gpu")
    FAKE_SLURM_STRICT      "0": accept unknown sbatch options instead of failing (default strict)
"""

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

FIRST_JOB_ID = 1001

# sbatch options that take a value: long name -> key in the recorded "options" dict.
SBATCH_VALUE_OPTIONS = {
    "--job-name": "job_name", "-J": "job_name",
    "--output": "output", "-o": "output",
    "--error": "error", "-e": "error",
    "--comment": "comment",
    "--account": "account", "-A": "account",
    "--partition": "partition", "-p": "partition",
    "--time": "time", "-t": "time",
    "--mem": "mem", "--mem-per-cpu": "mem_per_cpu", "--mem-per-gpu": "mem_per_gpu",
    "--gres": "gres", "--gpus": "gpus", "-G": "gpus", "--gpus-per-node": "gpus_per_node",
    "--cpus-per-task": "cpus_per_task", "-c": "cpus_per_task", "--cpus-per-gpu": "cpus_per_gpu",
    "--ntasks": "ntasks", "-n": "ntasks", "--ntasks-per-gpu": "ntasks_per_gpu",
    "--ntasks-per-node": "ntasks_per_node", "--nodes": "nodes", "-N": "nodes",
    "--chdir": "chdir", "-D": "chdir",
    "--wrap": "wrap", "--export": "export", "--constraint": "constraint", "-C": "constraint",
    "--qos": "qos", "-q": "qos", "--clusters": "clusters", "-M": "clusters",
    "--array": "array", "-a": "array", "--reservation": "reservation",
    "--exclude": "exclude", "-x": "exclude", "--dependency": "dependency", "-d": "dependency",
}
SBATCH_FLAGS = {"--parsable": "parsable", "--requeue": "requeue", "--no-requeue": "no_requeue",
                "--exclusive": "exclusive"}
# srun options that take a separate value when not written as --opt=value / -n1.
SRUN_VALUE_OPTIONS = {"-n", "--ntasks", "-N", "--nodes", "-c", "--cpus-per-task", "-J", "--job-name",
                      "--jobid", "--mem", "--mem-per-cpu", "-t", "--time", "-p", "--partition",
                      "--gpus", "-G", "--gres", "--cpus-per-gpu", "--cpu-bind", "-o", "--output"}


# ---------------------------------------------------------------- files
def log_path():
    default = Path(tempfile.gettempdir()) / f"fake_slurm-{os.getuid()}" / "calls.jsonl"
    return Path(os.environ.get("FAKE_SLURM_LOG") or default)


def state_dir():
    folder = Path(os.environ.get("FAKE_SLURM_STATE") or f"{log_path()}.state")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def locked():
    with open(state_dir() / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(entry):
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(), open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def load_jobs():
    path = state_dir() / "jobs.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_jobs(jobs):
    path = state_dir() / "jobs.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jobs, indent=1))
    tmp.replace(path)


def new_job(name, options):
    with locked():
        jobs = load_jobs()
        jobid = str(FIRST_JOB_ID + len(jobs))
        jobs[jobid] = {"name": name, "state": "RUNNING", "options": options, "exit_code": None}
        save_jobs(jobs)
    return jobid


def set_state(jobid, state, exit_code=None):
    with locked():
        jobs = load_jobs()
        if jobid in jobs:
            jobs[jobid]["state"] = state
            jobs[jobid]["exit_code"] = exit_code
            save_jobs(jobs)


def fail(cmd, message, code=1):
    print(f"{cmd}: error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------- option parsing
def parse_options(argv, value_options, flags=None):
    """-> (options, positional). Accepts --opt=value, --opt value, -o value and -ovalue."""
    flags = flags or {}
    options, positional, unknown = {}, [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            positional = argv[i:]
            break
        name, eq, value = arg.partition("=")
        if name in flags:
            options[flags[name]] = True
        elif name in value_options:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise ValueError(f"option {name} needs a value")
                value = argv[i]
            options[value_options[name]] = value
        elif not name.startswith("--") and len(name) > 2 and name[:2] in value_options:
            options[value_options[name[:2]]] = arg[2:]  # -n1, -pgpu
        else:
            unknown.append(arg)
        i += 1
    return options, positional, unknown


# ---------------------------------------------------------------- sbatch
def job_environment(jobid, options, workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    if options.get("export") not in (None, "ALL") and options["export"].startswith("NONE"):
        env = {k: env[k] for k in ("PATH", "HOME", "FAKE_SLURM_LOG", "FAKE_SLURM_STATE") if k in env}
    env.update({
        "SLURM_JOB_ID": jobid, "SLURM_JOBID": jobid, "SLURM_JOB_NAME": options.get("job_name", "sbatch"),
        "SLURM_SUBMIT_DIR": os.getcwd(), "SLURM_SUBMIT_HOST": "fake-login", "SLURM_CLUSTER_NAME": "fake",
        "SLURM_JOB_NODELIST": "fake-node1", "SLURMD_NODENAME": "fake-node1", "SLURM_NNODES": "1",
        "SLURM_NTASKS": str(options.get("ntasks", 1)),
    })
    for key, var in [("partition", "SLURM_JOB_PARTITION"), ("account", "SLURM_JOB_ACCOUNT"),
                     ("cpus_per_task", "SLURM_CPUS_PER_TASK"), ("cpus_per_gpu", "SLURM_CPUS_PER_GPU"),
                     ("mem", "SLURM_MEM_PER_NODE"), ("gpus", "SLURM_GPUS")]:
        if key in options:
            env[var] = str(options[key])
    if "gres" in options and "gpu" in options["gres"]:
        env["SLURM_GPUS"] = options["gres"].rsplit(":", 1)[-1] if ":" in options["gres"] else "1"
    return env


def sbatch(argv):
    try:
        options, positional, unknown = parse_options(argv, SBATCH_VALUE_OPTIONS, SBATCH_FLAGS)
    except ValueError as err:
        record({"cmd": "sbatch", "argv": argv, "stdin": None, "cwd": os.getcwd(), "error": str(err)})
        return fail("sbatch", str(err))
    script = None
    if "wrap" in options:
        if positional:
            return fail("sbatch", "script arguments not permitted with --wrap option")
        script = "#!/bin/sh\n" + options["wrap"] + "\n"
    elif positional:
        source = positional[0]
        script = sys.stdin.read() if source in ("/dev/stdin", "-") else Path(source).read_text()
    else:
        script = sys.stdin.read()
    jobid = None
    entry = {"cmd": "sbatch", "argv": argv, "stdin": None if "wrap" in options else script,
             "cwd": os.getcwd(), "options": options}
    if unknown and os.environ.get("FAKE_SLURM_STRICT", "1") != "0":
        entry["error"] = f"unrecognized option(s) {unknown}"
        record(entry)
        return fail("sbatch", f"unrecognized option(s) {unknown}")
    if not script.strip() or script.strip() == "#!/bin/sh":
        record({**entry, "error": "empty script"})
        return fail("sbatch", "empty batch script")

    jobid = new_job(options.get("job_name", "sbatch"), options)
    entry["jobid"] = jobid
    record(entry)

    workdir = options.get("chdir", os.getcwd())
    script_file = state_dir() / f"job-{jobid}.sh"
    script_file.write_text(script)
    tasks = array_tasks(options["array"]) if "array" in options else [None]
    for task in tasks:
        task_id = jobid if task is None else f"{jobid}_{task}"
        if task is not None:
            add_task(jobid, task_id)
        if os.environ.get("FAKE_SLURM_RUN", "1") == "0":
            set_state(task_id, "COMPLETED", 0)
            continue
        output = options.get("output", str(Path(workdir) / "slurm-%j.out"))
        output = output.replace("%j", jobid).replace("%x", options.get("job_name", "sbatch"))
        output = Path(workdir, output.replace("%A", jobid).replace("%a", str(task or 0)))
        output.parent.mkdir(parents=True, exist_ok=True)
        env = job_environment(jobid, options, workdir)
        if task is not None:    # each array task runs the script with its own task id
            env.update({"SLURM_ARRAY_JOB_ID": jobid, "SLURM_ARRAY_TASK_ID": str(task),
                        "SLURM_ARRAY_TASK_MIN": str(min(tasks)), "SLURM_ARRAY_TASK_MAX": str(max(tasks)),
                        "SLURM_ARRAY_TASK_COUNT": str(len(tasks)), "SLURM_ARRAY_TASK_STEP": "1"})
        with open(output, "w") as out:
            proc = subprocess.run(["/bin/sh", str(script_file)], cwd=workdir, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
        set_state(task_id, "COMPLETED" if proc.returncode == 0 else "FAILED", proc.returncode)
    if tasks != [None]:
        drop_job(jobid)         # sacct lists an array's tasks (<job>_<task>), not the array itself
    print(jobid if options.get("parsable") else f"Submitted batch job {jobid}")
    return 0


def array_tasks(spec):
    """--array=1-3,5 -> [1, 2, 3, 5] (a %limit suffix is ignored)."""
    tasks = []
    for part in spec.split("%")[0].split(","):
        low, _, high = part.partition("-")
        tasks += list(range(int(low), int(high or low) + 1))
    return tasks


def add_task(jobid, task_id):
    with locked():
        jobs = load_jobs()
        jobs[task_id] = {**jobs[jobid], "state": "RUNNING", "exit_code": None}
        save_jobs(jobs)


def drop_job(jobid):
    with locked():
        jobs = load_jobs()
        jobs.pop(jobid, None)
        save_jobs(jobs)


# ---------------------------------------------------------------- srun
def srun(argv):
    options, command, unknown = parse_options(argv, {o: o.lstrip("-") for o in SRUN_VALUE_OPTIONS})
    record({"cmd": "srun", "argv": argv, "stdin": None, "cwd": os.getcwd(),
            "options": options, "flags": unknown})
    if not command:
        return fail("srun", "no command given")
    sys.stdout.flush()
    os.execvp(command[0], command)


# ---------------------------------------------------------------- status queries
def wanted_jobs(options):
    jobs = load_jobs()
    ids = options.get("jobs")
    if ids:
        keep = {i.split(".")[0] for i in ids.split(",")}
        jobs = {k: v for k, v in jobs.items() if k in keep}
    if options.get("name"):
        names = set(options["name"].split(","))
        jobs = {k: v for k, v in jobs.items() if v["name"] in names}
    return jobs


def sacct_field(field, jobid, job):
    field = field.split("%")[0].lower()
    return {
        "jobidraw": jobid, "jobid": jobid, "state": job["state"], "jobname": job["name"],
        "reason": "None", "nodelist": "fake-node1", "account": job["options"].get("account", ""),
        "partition": job["options"].get("partition", ""),
        "exitcode": f"{job['exit_code'] or 0}:0",
    }.get(field, "")


def sacct(argv):
    value_options = {"--format": "format", "-o": "format", "--name": "name", "--jobs": "jobs", "-j": "jobs",
                     "--starttime": "starttime", "-S": "starttime", "--endtime": "endtime", "-E": "endtime",
                     "--clusters": "clusters", "-M": "clusters", "--user": "user", "-u": "user"}
    flags = {"-X": "allocations", "--allocations": "allocations", "--parsable2": "parsable2",
             "-P": "parsable2", "--noheader": "noheader", "-n": "noheader", "-nu": "noheader"}
    argv = [a for part in argv for a in (["-n", "-u"] if part == "-nu" else [part])]
    options, _, unknown = parse_options(argv, value_options, flags)
    record({"cmd": "sacct", "argv": argv, "stdin": None, "cwd": os.getcwd(), "options": options})
    if "user" in options and "jobs" not in options and "name" not in options:
        accounts = [a for a in os.environ.get("FAKE_SLURM_ACCOUNTS", "").split(",") if a]
        if accounts:
            print(accounts[0])
        return 0
    fields = options.get("format", "JobID,JobName,State").split(",")
    sep = "|" if options.get("parsable2") else " "
    lines = [] if options.get("noheader") else [sep.join(fields)]
    for jobid, job in wanted_jobs(options).items():
        lines.append(sep.join(sacct_field(f, jobid, job) for f in fields))
    print("\n".join(lines))
    return 0


def squeue(argv):
    value_options = {"--format": "format", "-o": "format", "--name": "name", "-n": "name",
                     "--jobs": "jobs", "-j": "jobs", "--states": "states", "-t": "states",
                     "--user": "user", "-u": "user"}
    options, _, _ = parse_options(argv, value_options, {"--noheader": "noheader", "-h": "noheader"})
    record({"cmd": "squeue", "argv": argv, "stdin": None, "cwd": os.getcwd(), "options": options})
    fmt = options.get("format", "%i|%T")
    codes = {"%i": lambda i, j: i, "%T": lambda i, j: j["state"], "%j": lambda i, j: j["name"],
             "%P": lambda i, j: j["options"].get("partition", "")}
    for jobid, job in wanted_jobs(options).items():
        line = fmt
        for code, get in codes.items():
            line = line.replace(code, get(jobid, job))
        print(line)
    return 0


# ---------------------------------------------------------------- cluster information
def sinfo(argv):
    record({"cmd": "sinfo", "argv": argv, "stdin": None, "cwd": os.getcwd()})
    partitions = [p for p in os.environ.get("FAKE_SLURM_PARTITIONS", "cpu*,gpu").split(",") if p]
    if "%P" in " ".join(argv):
        if not any(a in ("-h", "--noheader") for a in argv):
            print("PARTITION")
        print("\n".join(partitions))
    else:
        print("PARTITION AVAIL TIMELIMIT NODES STATE NODELIST")
        for p in partitions:
            print(f"{p} up infinite 1 idle fake-node1")
    return 0


def scontrol(argv):
    record({"cmd": "scontrol", "argv": argv, "stdin": None, "cwd": os.getcwd()})
    if argv[:2] == ["show", "config"]:
        print("Configuration data as of 2026-01-01T00:00:00\nClusterName             = fake\n"
              "MaxArraySize            = 1001\nMinJobAge               = 300 sec")
        return 0
    if argv[:2] == ["show", "job"] and len(argv) > 2:
        job = load_jobs().get(argv[2])
        if job is None:
            return fail("scontrol", "Invalid job id specified")
        print(f"JobId={argv[2]} JobName={job['name']} JobState={job['state']}")
        return 0
    if argv[:1] == ["show"] and argv[1:2] in (["partition"], ["partitions"]):
        for p in os.environ.get("FAKE_SLURM_PARTITIONS", "cpu*,gpu").split(","):
            print(f"PartitionName={p.rstrip('*')} State=UP MaxTime=UNLIMITED MaxNodes=UNLIMITED\n")
        return 0
    return 0


def accounts_report(cmd, argv):
    record({"cmd": cmd, "argv": argv, "stdin": None, "cwd": os.getcwd()})
    for account in os.environ.get("FAKE_SLURM_ACCOUNTS", "").split(","):
        if account:
            print(account)
    return 0


def scancel(argv):
    _, ids, _ = parse_options(argv, {"--clusters": "clusters", "-M": "clusters", "--name": "name"})
    record({"cmd": "scancel", "argv": argv, "stdin": None, "cwd": os.getcwd()})
    for jobid in ids:
        set_state(jobid.split("_")[0], "CANCELLED")
    return 0


COMMANDS = {
    "sbatch": sbatch, "srun": srun, "sacct": sacct, "squeue": squeue, "sinfo": sinfo,
    "scontrol": scontrol, "scancel": scancel,
    "sacctmgr": lambda argv: accounts_report("sacctmgr", argv),
    "sshare": lambda argv: accounts_report("sshare", argv),
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        return fail("fake_slurm", f"usage: fake_slurm.py {{{','.join(COMMANDS)}}} [args...]", 2)
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
