"""The fast tier's harness: the operator's real manager, caches and reconcilers over the fake
apiserver and a fake clock. `given` puts objects in the fake and its caches (as the watches
would), `reconcile` runs one reconcile and returns the writes it made, after which the caches
see the fake's objects again (the watch events that would follow)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from modelwerk import constants, kinds, wiring
from modelwerk.builders.netpol import NetworkPolicyConfig
from modelwerk.config import OperatorConfig
from modelwerk.kinds import Kind
from modelwerk.manager import Manager
from tests.reconcile.fake import Clock, FakeKube, Write

API = "modelwerk.io/v1alpha1"
NS = "ns"
DIGEST = "sha256:" + "a" * 64
SELDON_CRD = "seldondeployments.machinelearning.seldon.io"
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"
MONITORING_CRDS = (
    "prometheusrules.monitoring.coreos.com",
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
)
CONTROLLERS = {c.kind: c for c in wiring.CONTROLLERS}


RECONCILED = (kinds.MODEL, kinds.TRAININGRUN, kinds.DEPLOYMENT)


class World:
    def __init__(
        self,
        *,
        crds: Iterable[str] = (),
        prometheus_url: str = "",
        network_policy: NetworkPolicyConfig | None = None,
    ) -> None:
        self.clock = Clock()
        self.kube = FakeKube(self.clock, set(crds))
        self._crds = tuple(crds)
        self._prometheus_url = prometheus_url
        config = OperatorConfig(
            namespaces=(NS,),
            workers=1,
            serving_image="img:1",
            prometheus_url=prometheus_url,
            network_policy=network_policy,
        )
        self.mgr: Manager = wiring.build_manager(self.kube, config, clock=self.clock)

    async def restarted(self, after: float = 10.0) -> World:
        """A fresh operator over the same apiserver `after` seconds later: new caches (filled by
        its start-up listing, wiring.sync_caches), new queues, no memory of what it did."""
        fresh = World(crds=self._crds, prometheus_url=self._prometheus_url)
        fresh.clock.at = self.clock.at
        fresh.clock.advance(after)
        fresh.kube = self.kube
        fresh.kube.clock = fresh.clock
        fresh.mgr = wiring.build_manager(fresh.kube, self.mgr.config, clock=fresh.clock)
        await wiring.sync_caches(fresh.mgr)
        return fresh

    def reconciled(self) -> list[tuple[Kind, str]]:
        """Every object the operator reconciles, as (kind, name)."""
        return sorted(
            ((kind, name) for kind in RECONCILED for (_, name) in self._names(kind)),
            key=lambda kn: (str(kn[0]), kn[1]),
        )

    def _names(self, kind: Kind) -> list[tuple[str, str]]:
        return [
            (ns, name)
            for (api, k, ns, name) in self.kube.objects
            if (api, k) == (kind.api_version, kind.kind)
        ]

    async def reconcile_all(self) -> list[Write]:
        """One reconcile of every reconciled object; the writes they made."""
        mark = self.kube.mark()
        for kind, name in self.reconciled():
            await self.reconcile(kind, name)
        return self.kube.since(mark)

    async def settle(self, passes: int = 6) -> None:
        """Reconciles everything until a whole pass writes nothing."""
        for _ in range(passes):
            if not await self.reconcile_all():
                return
        raise AssertionError(f"still writing after {passes} passes")

    def children(self) -> set[Kind]:
        """The child kinds of Deployments present in the apiserver."""
        owned = kinds.owned_by(constants.LABEL_DEPLOYMENT)
        return {kinds.of(api, k) for (api, k, _, _) in self.kube.objects} & set(owned)

    def given(self, *bodies: Mapping[str, Any]) -> None:
        for body in bodies:
            self.kube.put(body)
        self.sync()

    def sync(self) -> None:
        """The caches catch up with the fake apiserver (every watch event delivered)."""
        for kind in kinds.CACHED:
            store = self.mgr.store(kind)
            present = {
                (o["metadata"]["namespace"], o["metadata"]["name"]): o
                for (api, k, _, _), o in self.kube.objects.items()
                if (api, k) == (kind.api_version, kind.kind)
            }
            for key in [
                k
                for k in (
                    (b["metadata"]["namespace"], b["metadata"]["name"]) for b in store.values()
                )
                if k not in present
            ]:
                store.remove(key)
            for body in present.values():
                assert kind.cache is not None
                label = kind.cache.owner_label
                if label is None or label in (body["metadata"].get("labels") or {}):
                    store.upsert(json.loads(json.dumps(body)))

    async def reconcile(self, kind: Kind, name: str) -> tuple[float | None, list[Write]]:
        mark = self.kube.mark()
        requeue = await CONTROLLERS[kind].reconcile(self.mgr, (NS, name))
        self.sync()
        return requeue, self.kube.since(mark)

    def status(self, kind: Kind, name: str) -> dict[str, Any]:
        found = self.kube.find(kind, name, NS)
        assert found is not None, f"{kind} {name} does not exist"
        return dict(found.get("status") or {})

    def condition(self, kind: Kind, name: str, type_: str) -> tuple[str, str]:
        for cond in self.status(kind, name).get("conditions") or []:
            if cond["type"] == type_:
                return cond["status"], cond["reason"]
        raise AssertionError(f"{kind} {name} has no condition {type_}")


def ready(world: World, *, lost: int = 0) -> None:
    """The Deployment controller and Seldon Core do their part: every child is available, but
    for `lost` pods of each apps/v1 Deployment (gone, their replacements not ready yet)."""
    for (api, kind, _, _), obj in world.kube.objects.items():
        if (api, kind) == ("apps/v1", "Deployment"):
            # Without spec.replicas an HPA scales it: 2, the minReplicas of these tests.
            replicas = (obj.get("spec") or {}).get("replicas", 2)
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": max(0, replicas - lost),
                "availableReplicas": max(0, replicas - lost),
            }
        elif kind == "SeldonDeployment":
            obj["status"] = {
                "state": "Available",
                "replicas": 2,
                "address": {"url": "http://iris-seldon:8000"},
            }
    world.sync()


def summary(writes: Iterable[Write]) -> list[str]:
    """`verb kind name` per write; Events as `event Kind name Reason`."""
    return [f"{w!r} {w.body['reason']}" if w.verb == "event" else repr(w) for w in writes]


def model(name: str = "iris", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Model",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"storage": {"uri": "s3://bucket/iris"}, **spec},
    }


def registered(number: int, digest: str | None = DIGEST, **extra: Any) -> dict[str, Any]:
    artifact: dict[str, Any] = {"uri": f"s3://bucket/iris/run-{number}/model.joblib"}
    if digest:
        artifact["digest"] = digest[:-1] + str(number)
    return {
        "version": number,
        "artifact": artifact,
        "metrics": {"accuracy": 0.9},
        "source": {"trainingRun": f"run-{number}", "uid": f"uid-run-{number}"},
        "registeredAt": "2026-01-01T00:00:00Z",
        **extra,
    }


def model_with(
    *versions: dict[str, Any], aliases: Mapping[str, int] | None = None
) -> dict[str, Any]:
    body = model()
    body["status"] = {
        "versions": list(versions),
        "aliases": dict(aliases or {}),
        "latestVersion": max((v["version"] for v in versions), default=None),
        "phase": "Ready",
    }
    return body


def run(name: str = "run-1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"image": "trainer:1", "model": "iris", "backoffLimit": 0, **spec},
    }


def report(accuracy: float = 0.95) -> str:
    return json.dumps(
        {
            "v": 1,
            "metrics": {"accuracy": accuracy},
            "artifact": {"uri": "s3://bucket/iris/run-1/model.joblib", "digest": DIGEST},
        }
    )


def deployment(name: str = "iris", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            k: v
            for k, v in {
                "model": "iris",
                "version": 1,
                "replicas": 2,
                "runtime": "native",
                **spec,
            }.items()
            if v is not None
        },
    }
