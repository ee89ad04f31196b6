#!/usr/bin/python3
"""Drives kubesim with the official Python kubernetes client (Debian python3-kubernetes).

Usage: python_client.py KUBECONFIG
Creates a Job, lists it, watches it to completion, reads its pod's log. Prints one line per
step; exits non-zero on the first mismatch.
"""
import json
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def main():
    config.load_kube_config(config_file=sys.argv[1])
    batch = client.BatchV1Api()
    core = client.CoreV1Api()

    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="py-job"),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations={
                    "kubesim.kiln.dev/duration": "200ms",
                    "kubesim.kiln.dev/logs": "line one\nline two",
                }),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="main", image="busybox:1.36",
                                                   command=["true"])]))))
    created = batch.create_namespaced_job("default", job)
    assert created.metadata.uid, created
    assert created.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "py-job"
    print("created", created.metadata.name)

    try:
        batch.create_namespaced_job("default", job)
        raise SystemExit("second create succeeded")
    except ApiException as e:
        assert e.status == 409, e
        status = json.loads(e.body)
        assert status["reason"] == "AlreadyExists", status
        assert status["message"] == 'jobs.batch "py-job" already exists', status
    print("conflict ok")

    jobs = batch.list_namespaced_job("default")
    assert [j.metadata.name for j in jobs.items] == ["py-job"], jobs
    print("listed", len(jobs.items))

    w = watch.Watch()
    done = None
    for event in w.stream(batch.list_namespaced_job, "default",
                          field_selector="metadata.name=py-job", timeout_seconds=30):
        conds = event["object"].status.conditions or []
        if any(c.type == "Complete" and c.status == "True" for c in conds):
            done = event["object"]
            w.stop()
    assert done is not None, "watch ended without Complete"
    types = [c.type for c in done.status.conditions]
    assert types == ["SuccessCriteriaMet", "Complete"], types
    assert done.status.succeeded == 1, done.status
    assert done.status.conditions[1].reason == "CompletionsReached"
    print("completed", types)

    pods = core.list_namespaced_pod("default", label_selector="job-name=py-job")
    assert len(pods.items) == 1, pods
    pod = pods.items[0]
    assert pod.status.phase == "Succeeded", pod.status
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed", term
    log = core.read_namespaced_pod_log(pod.metadata.name, "default")
    assert log == "line one\nline two\n", repr(log)
    print("log ok")

    batch.delete_namespaced_job("py-job", "default", propagation_policy="Background")
    try:
        batch.read_namespaced_job("py-job", "default")
        raise SystemExit("job still there")
    except ApiException as e:
        assert e.status == 404, e
    print("deleted")


if __name__ == "__main__":
    main()
