"""What Slurm 22.05 prints, parsed (opskit.jobs.slurm.parse). The samples follow Slurm's own
printing code (src/api/job_info.c, src/sinfo/print.c, src/sbatch/sbatch.c of slurm-22-05-8-1,
Debian 12's version); the real path is tests/integration/test_run_slurm.py."""

from __future__ import annotations

import pytest

from opskit.errors import JobError
from opskit.jobs.slurm import parse

PENDING = (
    "JobId=7 JobName=opskit-r1 UserId=opskit(1000) GroupId=opskit(1000) MCS_label=N/A Priority=4294901754 "
    "Nice=0 Account=(null) QOS=(null) JobState=PENDING Reason=Resources Dependency=(null) Requeue=1 "
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=00:10:00 TimeMin=N/A "
    "SubmitTime=2026-11-30T18:20:01 EligibleTime=2026-11-30T18:20:01 AccrueTime=2026-11-30T18:20:01 "
    "StartTime=2026-11-30T18:30:01 EndTime=2026-11-30T18:40:01 Deadline=N/A SuspendTime=None SecsPreSuspend=0 "
    "LastSchedEval=2026-11-30T18:20:01 Scheduler=Main Partition=gpu AllocNode:Sid=slurm-login:412 "
    "ReqNodeList=(null) ExcNodeList=(null) NodeList=(null) NumNodes=2-2 NumCPUs=2 NumTasks=2 CPUs/Task=1 "
    "ReqB:S:C:T=0:0:*:* TRES=cpu=2,node=2,billing=2,gres/gpu=4 Socks/Node=* NtasksPerN:B:S:C=1:0:*:* "
    "CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 "
    "OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/home/opskit "
    "StdErr=/shared/opskit/runs/r1/slurm-7.out StdIn=/dev/null StdOut=/shared/opskit/runs/r1/slurm-7.out "
    "Power= TresPerNode=gres:gpu:2"
)
RUNNING = PENDING.replace("JobId=7", "JobId=8").replace("JobState=PENDING Reason=Resources",
                                                           "JobState=RUNNING Reason=None").replace(
    "NodeList=(null)", "NodeList=slurm-node[1-2] BatchHost=slurm-node1")
NOT_AVAIL = PENDING.replace("JobId=7", "JobId=9").replace(
    "Reason=Resources", "Reason=ReqNodeNotAvail,_UnavailableNodes:slurm-node2")
CANCELLED = RUNNING.replace("JobId=8", "JobId=10").replace("JobState=RUNNING Reason=None",
                                                            "JobState=CANCELLED Reason=None").replace(
    "ExitCode=0:0", "ExitCode=0:15")
NODE_FAIL = RUNNING.replace("JobId=8", "JobId=11").replace("JobState=RUNNING Reason=None",
                                                            "JobState=NODE_FAIL Reason=NodeDown").replace(
    "ExitCode=0:0", "ExitCode=0:0")


def test_scontrol_one_line_per_job_with_spaced_values_and_odd_keys():
    jobs = parse.parse_jobs("\n".join([PENDING, RUNNING, NOT_AVAIL, CANCELLED, NODE_FAIL]) + "\n")
    assert list(jobs) == ["7", "8", "9", "10", "11"]
    p = jobs["7"]
    assert (p.slurm_state, p.state, p.reason, p.partition, p.nodes) == ("PENDING", "pending", "Resources", "gpu", "")
    assert p.fields["AllocNode:Sid"] == "slurm-login:412" and p.fields["ReqB:S:C:T"] == "0:0:*:*"
    assert p.fields["Power"] == "" and p.fields["TresPerNode"] == "gres:gpu:2"
    assert p.stdout == "/shared/opskit/runs/r1/slurm-7.out"
    r = jobs["8"]
    assert (r.state, r.nodes, r.batch_host, r.exit_code, r.start) == (
        "running", "slurm-node[1-2]", "slurm-node1", 0, "2026-11-30T18:30:01")
    assert jobs["9"].reason == "ReqNodeNotAvail, UnavailableNodes:slurm-node2"
    assert (jobs["10"].state, jobs["10"].signal) == ("interrupted", 15)
    assert (jobs["11"].state, jobs["11"].reason) == ("lost", "NodeDown")


def test_no_jobs_and_foreign_lines():
    assert parse.parse_jobs("No jobs in the system\n") == {}
    assert parse.parse_jobs("") == {}


@pytest.mark.parametrize(("reason", "words"), [
    ("Resources", "Resources: waiting for resources: the nodes or GPUs it asks for are in use"),
    ("Priority", "Priority: other jobs come first (higher priority) in this partition"),
    ("ReqNodeNotAvail, UnavailableNodes:slurm-node2",
     "ReqNodeNotAvail: a node it needs is not available (down, drained or reserved) (unavailable: slurm-node2)"),
    ("ReqNodeNotAvail, May be reserved for other job",
     "ReqNodeNotAvail: a node it needs is not available (down, drained or reserved) (May be reserved for other job)"),
    ("PartitionTimeLimit", "PartitionTimeLimit: its --time is over the partition's time limit"),
    ("QOSMaxJobsPerUserLimit", "QOSMaxJobsPerUserLimit: a limit of your account or QOS"),
    ("BurstBufferStageIn", "BurstBufferStageIn"),
    ("None", ""),
    ("", ""),
])
def test_reasons_in_words_with_slurms_own_name(reason, words):
    assert parse.reason_words(reason) == words


def test_every_state_slurm_prints_has_a_word():
    # job_state_string() of 22.05, base states and the flags squeue/scontrol may print
    slurm = ["PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
             "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "COMPLETING", "CONFIGURING", "RESIZING",
             "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED", "REVOKED", "RESV_DEL_HOLD",
             "SIGNALING", "STAGE_OUT"]
    assert set(slurm) <= set(parse.STATES)


SINFO = """slurm-node1|gpu*|idle|gpu:2|2
slurm-node2|gpu*|down*|gpu:2|2
slurm-node1|debug|mixed|gpu:a100:2(S:0),shard:4|2
slurm-node3|debug|drained~|(null)|8
"""


def test_sinfo_nodes_states_flags_and_gres():
    nodes = parse.parse_sinfo(SINFO)
    assert [(n.name, n.partition, n.default, n.state, n.flags, n.gpus, n.cpus) for n in nodes] == [
        ("slurm-node1", "gpu", True, "idle", "", 2, 2),
        ("slurm-node2", "gpu", True, "down", "*", 2, 2),
        ("slurm-node1", "debug", False, "mixed", "", 2, 2),
        ("slurm-node3", "debug", False, "drained", "~", 0, 8),
    ]
    assert [n.usable for n in nodes] == [True, False, True, False]
    assert not nodes[1].responding


def test_partition_default_named_and_unknown():
    nodes = parse.parse_sinfo(SINFO)
    part, mine = parse.partition_nodes(nodes, None)
    assert part == "gpu" and [n.name for n in mine] == ["slurm-node1", "slurm-node2"]
    assert [n.name for n in parse.partition_nodes(nodes, "debug")[1]] == ["slurm-node1", "slurm-node3"]
    with pytest.raises(JobError, match=r"no partition 'nope' \(sinfo lists: debug, gpu \(default\)\)"):
        parse.partition_nodes(nodes, "nope")
    with pytest.raises(JobError, match="no default partition"):
        parse.partition_nodes([n for n in nodes if not n.default], None)


def test_sbatch_parsable_and_its_refusals():
    assert parse.parse_parsable("42\n") == ("42", "")
    assert parse.parse_parsable("42;opskit\n") == ("42", "opskit")
    with pytest.raises(JobError, match="not a job ID"):
        parse.parse_parsable("Submitted batch job 42\n")
    stderr = ("sbatch: error: invalid partition specified: nope\n"
              "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert parse.sbatch_message(stderr) == stderr.strip()
    gres = "sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification\n"
    assert parse.sbatch_message(gres) == gres.strip()


@pytest.mark.parametrize(("text", "names"), [
    ("slurm-node[1-2]", ["slurm-node1", "slurm-node2"]),
    ("n[01-03,7],gpu-a", ["n01", "n02", "n03", "n7", "gpu-a"]),
    ("login", ["login"]),
    ("", []),
])
def test_hostlists_as_scontrol_show_hostnames(text, names):
    assert parse.expand_hostlist(text) == names
