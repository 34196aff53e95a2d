"""profiles/slurm with the SLURM executor plugin, against stand-in SLURM commands (tests/fake_slurm).

The workflow is copied to a temporary folder and run with `--profile profiles/slurm --executor
slurm` on a tiny local data set: the prepare job (a localrule) must run on the "login node" (no
sbatch), the train job must be submitted with the GPU, partition, account, time, memory and CPU
request the profile configures, run inside the fake allocation, and leave its metrics.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_copy import ROOT, copy_workflow
FAKE_SLURM = ROOT / "tests" / "fake_slurm"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
FAKE_COMMANDS = ["sbatch", "srun", "sacct", "squeue", "sinfo", "scontrol", "scancel", "sacctmgr", "sshare"]

TEST_CONFIG = {
    "seeds": [1],
    "model": {"source": "tiny"},
    "datasets": {"toy": {"source": "local", "path": "data/toy.csv", "format": "csv", "max_length": 32,
                         "dev_fraction": 0.2, "test_fraction": 0.2,
                         "attack_examples": 4, "dev_attack_examples": 4}},
    "training": {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "learning_rate": 1.0e-3},
    "methods": ["finetune"],
    "figures": {"per_epoch_methods": ["finetune"]},
}
TRAIN_TARGET = "results/train/toy/finetune/seed1/metrics.json"


def profile():
    return yaml.safe_load(PROFILE.read_text())


def rule_resources(rule):
    """The resources the profile gives a rule: default-resources updated by set-resources."""
    settings = profile()
    return {**settings.get("default-resources", {}), **settings.get("set-resources", {}).get(rule, {})}


def data_module_ready():
    """floodx.data provides `python -m floodx.data` (and load_meta for the training job)."""
    spec = importlib.util.find_spec("floodx.data")
    if spec is None:
        return False
    module = importlib.import_module("floodx.data")
    return hasattr(module, "load_meta") and hasattr(module, "main")


def slurm_env(log):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    python_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([str(FAKE_SLURM), python_bin, env.get("PATH", "")])
    env["FAKE_SLURM_LOG"] = str(log)
    # sacctmgr reports the profile's account, so the plugin's account validation passes.
    env["FAKE_SLURM_ACCOUNTS"] = str(profile()["default-resources"]["slurm_account"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def read_log(log):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def sbatch_calls(log):
    return [c for c in read_log(log) if c["cmd"] == "sbatch"]


def submitted_rule(call):
    return call["options"]["comment"].split("_wildcards_")[0].removeprefix("rule_")


def slurm_workdir(tmp_path, sentences, config):
    """The workflow copied into tmp_path with the toy data set and `config`; returns the stand-in's log path."""
    copy_workflow(tmp_path)
    (tmp_path / "data").mkdir()
    rows = ["text,label"] + [f'"{text}",{label}' for text, label in sentences]
    (tmp_path / "data" / "toy.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "config" / "test_slurm.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "fake_slurm.jsonl"


@pytest.fixture(scope="module", autouse=True)
def executable_fakes():
    for name in FAKE_COMMANDS:
        path = FAKE_SLURM / name
        assert path.exists(), f"missing stand-in {path}"
        if not os.access(path, os.X_OK):
            path.chmod(0o755)


# ---------------------------------------------------------------- the stand-ins themselves
def test_fake_sbatch_runs_job_and_reports_completed(tmp_path):
    log = tmp_path / "calls.jsonl"
    env = slurm_env(log)
    wrap = 'echo "job $SLURM_JOB_ID gpus=$SLURM_GPUS" > out.txt'
    out = subprocess.run(["sbatch", "--parsable", "--job-name", "run-1", "--output", str(tmp_path / "%j.log"),
                          "-p", "gpu", "-A", "acct", "-t", "5", "--mem", "100", "--gpus=1",
                          "--cpus-per-gpu=4", "-D", str(tmp_path), f"--wrap={wrap}"],
                         env=env, capture_output=True, text=True, check=True)
    jobid = out.stdout.strip()
    assert jobid.isdigit()
    assert (tmp_path / "out.txt").read_text().strip() == f"job {jobid} gpus=1"
    script = "#!/bin/sh\nexit 3\n"
    failed = subprocess.run(["sbatch", "--parsable", "--job-name", "run-1", "-D", str(tmp_path), "/dev/stdin"],
                            input=script, env=env, capture_output=True, text=True, check=True).stdout.strip()
    status = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", "--format=JobIdRaw,State",
                             "--name", "run-1"], env=env, capture_output=True, text=True, check=True).stdout
    assert status.split() == [f"{jobid}|COMPLETED", f"{failed}|FAILED"]
    queue = subprocess.run(["squeue", "--format=%i|%T", "--states=all", "--noheader", "--name", "run-1"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert queue.split() == status.split()
    calls = sbatch_calls(log)
    assert calls[0]["options"]["partition"] == "gpu" and calls[0]["options"]["gpus"] == "1"
    assert calls[1]["stdin"] == script
    bad = subprocess.run(["sbatch", "--no-such-option", "--wrap=true"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    # An array: each task runs with its own SLURM_ARRAY_TASK_ID; sacct lists <job>_<task>.
    array = subprocess.run(["sbatch", "--parsable", "--job-name", "arr", "--array=1-2", "-D", str(tmp_path),
                            '--wrap=echo "$SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_MIN-$SLURM_ARRAY_TASK_MAX" >> tasks.txt'],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert (tmp_path / "tasks.txt").read_text().split("\n")[:2] == ["1 of 1-2", "2 of 1-2"]
    status = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", "--format=JobIdRaw,State", "--name", "arr"],
                            env=env, capture_output=True, text=True, check=True).stdout
    assert status.split() == [f"{array}_1|COMPLETED", f"{array}_2|COMPLETED"]


# ---------------------------------------------------------------- the profile
def test_profile_keeps_cpu_setting_per_gpu():
    """The plugin prefers cpus_per_task over cpus_per_gpu: a GPU rule must not inherit cpus_per_task."""
    settings = profile()
    assert "cpus_per_task" not in settings.get("default-resources", {})
    for rule, resources in settings["set-resources"].items():
        if resources.get("gpu"):
            assert "cpus_per_task" not in resources, rule
            assert {"slurm_partition", "runtime", "mem_mb", "cpus_per_gpu"} <= set(resources), rule
    forbidden = ("--gres", "--gpus", "--mem", "-p ", "-A ", "-t ", "--cpus-per", "--partition", "--account")
    for rule, resources in settings["set-resources"].items():
        assert not any(opt in str(resources.get("slurm_extra", "")) for opt in forbidden), rule


def workflow_rules():
    """rule name -> its text, from workflow/rules/*.smk; and the names declared localrules."""
    rules, local = {}, set()
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"^localrules:\s*(.+)$", text, re.M):
            local |= {name.strip() for name in match.group(1).split(",") if name.strip()}
        parts = re.split(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, flags=re.M)
        rules.update(zip(parts[1::2], parts[2::2]))
    return rules, local


def test_only_fetch_and_prepare_rules_run_on_the_login_node():
    rules, local = workflow_rules()
    internet = {name for name in rules if name.startswith(("fetch_", "prepare_"))}
    assert internet, "no fetch/prepare rules found"
    assert internet <= local, f"needs the internet but would be submitted: {sorted(internet - local)}"
    gpu_rules = {name for name, body in rules.items() if re.search(r"\bgpu\s*=\s*[1-9]", body)}
    assert not gpu_rules & local


def test_every_gpu_rule_has_a_gpu_request_in_the_profile():
    rules, _ = workflow_rules()
    gpu_rules = {name for name, body in rules.items() if re.search(r"\bgpu\s*=\s*[1-9]", body)}
    assert {"train", "probe", "attack_shard"} <= gpu_rules
    configured = profile()["set-resources"]
    missing = sorted(r for r in gpu_rules if not configured.get(r, {}).get("gpu"))
    assert not missing, f"GPU rules without a GPU request in profiles/slurm: {missing}"
    unknown = sorted(set(configured) - set(rules))
    assert not unknown, f"profiles/slurm configures rules the workflow does not have: {unknown}"


@pytest.mark.slow
def test_slurm_profile_end_to_end(tmp_path, sentences):
    """prepare_data runs locally (login node), train goes through sbatch with the profile's request."""
    if not data_module_ready():
        pytest.skip("floodx.data (python -m floodx.data, load_meta) is not available yet")
    log = slurm_workdir(tmp_path, sentences, TEST_CONFIG)

    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", TRAIN_TARGET,
         "--profile", "profiles/slurm", "--executor", "slurm",
         "--configfile", "config/test_slurm.yaml",
         "--retries", "0", "--latency-wait", "5", "--slurm-init-seconds-before-status-checks", "1",
         "--slurm-keep-successful-logs", "--set-threads", "train=1"],
        cwd=tmp_path, env=slurm_env(log), capture_output=True, text=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    slurm_logs = "\n".join(p.read_text() for p in (tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")) \
        if (tmp_path / ".snakemake" / "slurm_logs").exists() else ""
    assert proc.returncode == 0, output[-6000:] + "\n--- slurm logs ---\n" + slurm_logs[-6000:]

    # The localrule ran here, not through sbatch; the GPU job was submitted exactly once.
    assert "localrule prepare_data:" in output
    assert (tmp_path / "results" / "data" / "toy" / "meta.json").exists()
    calls = sbatch_calls(log)
    assert [submitted_rule(c) for c in calls] == ["train"], [c["argv"] for c in calls]

    # The sbatch line carries what profiles/slurm configures for `train`.
    want = rule_resources("train")
    options = calls[0]["options"]
    assert options["partition"] == str(want["slurm_partition"])
    assert options["account"] == str(want["slurm_account"])
    assert options["time"] == str(want["runtime"])
    assert options["mem"] == str(want["mem_mb"])
    assert options.get("gpus") == str(want["gpu"]) or options.get("gres") == f"gpu:{want['gpu']}"
    assert options["cpus_per_gpu"] == str(want["cpus_per_gpu"])
    assert "cpus_per_task" not in options
    assert options["chdir"] == str(tmp_path)
    assert options.get("parsable") is True

    # Inside the allocation the job step was started with the GPU request, and the job finished.
    sruns = [c for c in read_log(log) if c["cmd"] == "srun"]
    assert sruns and f"--gpus={want['gpu']}" in sruns[0]["argv"]
    metrics = json.loads((tmp_path / TRAIN_TARGET).read_text())
    assert len(metrics["epochs"]) == 1
    assert (tmp_path / "results/train/toy/finetune/seed1" / metrics["final_checkpoint"]).is_dir()


@pytest.mark.slow
def test_grid_jobs_go_in_as_one_slurm_array(tmp_path, sentences):
    """Two training jobs of one rule: the profile's slurm-array-jobs submits them as one array whose
    tasks both run and finish (the stand-in sbatch runs each task with its SLURM_ARRAY_TASK_ID)."""
    assert "train" in profile()["slurm-array-jobs"].split(",")
    config = {**TEST_CONFIG, "methods": ["finetune", "pgd"], "method_params": {"pgd": {"adv_steps": 1}}}
    log = slurm_workdir(tmp_path, sentences, config)
    targets = [TRAIN_TARGET, TRAIN_TARGET.replace("finetune", "pgd")]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *targets, "--profile", "profiles/slurm", "--executor", "slurm",
         "--configfile", "config/test_slurm.yaml", "--retries", "0", "--latency-wait", "5",
         "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs", "--set-threads", "train=1"],
        cwd=tmp_path, env=slurm_env(log), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    calls = [c for c in sbatch_calls(log) if submitted_rule(c) == "train"]
    assert len(calls) == 1 and calls[0]["options"]["array"] == "1-2", [c["argv"] for c in calls]
    for target in targets:
        assert json.loads((tmp_path / target).read_text())["epochs"], target


@pytest.mark.slow
def test_every_ready_grid_job_is_submitted_as_an_array_and_finishes(tmp_path, sentences):
    """Five ready training jobs: every task is submitted once and finishes. The profile's `jobs` exceeds the
    paper config's job count, as array submission needs with snakemake-executor-plugin-slurm 2.8 (with
    `--jobs 2` the same run hangs: the plugin holds array jobs until all ready ones of the rule arrive)."""
    from floodx import plan

    paper = plan.summary(plan.plan(plan.load([str(ROOT / "config/paper.yaml")]), results=tmp_path / "none"))
    assert profile()["jobs"] > paper["jobs"] and "train" in profile()["slurm-array-jobs"]
    log = slurm_workdir(tmp_path, sentences, TEST_CONFIG)
    runs = ["finetune"] + [f"flooding-b{level:.2f}" for level in (0.1, 0.2, 0.3, 0.4)]
    targets = [TRAIN_TARGET.replace("finetune", run) for run in runs]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *targets, "--profile", "profiles/slurm", "--executor", "slurm",
         "--configfile", "config/test_slurm.yaml", "--retries", "0", "--latency-wait", "5",
         "--slurm-init-seconds-before-status-checks", "1", "--set-threads", "train=1"],
        cwd=tmp_path, env=slurm_env(log), capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    calls = [c for c in sbatch_calls(log) if submitted_rule(c) == "train"]

    def tasks(call):
        array = call["options"].get("array")
        if not array:
            return 1
        return sum(int(b) - int(a) + 1 for a, b in (part.split("-") if "-" in part else (part, part)
                                                     for part in array.split("%")[0].split(",")))

    assert sum(tasks(c) for c in calls) == len(runs), [c["argv"] for c in calls]
    for target in targets:
        assert json.loads((tmp_path / target).read_text())["epochs"], target
