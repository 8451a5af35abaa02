"""Handlers of containerize.saga and lib/registry.saga: the seed's Container Kit flow (simulated).

Nothing touches Docker, a registry or a cluster: every effect is a row in the
examples database. Failures are driven by data:

* base image ``python:3.6-alpine`` does not build (docker.BuildError);
* base images listed in ``VULNERABLE`` fail the scan above ``max_severity`` (security.Vulnerable);
* ``simulate_unhealthy: true`` in the input fails the health check (k8s.Unhealthy);
* an empty registry token is refused (registry.Unauthorized);
* a repository URL that is not ``http(s)://`` or ``git@`` is not found (repo.NotFound).

``containerkit.analyze_failure`` is the saga's analyzer: after a clean rollback it
looks at the failure and returns input overrides (another base image) or None.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

# The shared effects module sits beside this file (plugin files may import their neighbours).
import sagalang_examples_effects as fx

from sagalang.context import Context, Failure
from sagalang.plugins import handler

LANGUAGES = {
    # language: (port, health path, recommended base image)
    "python": (8000, "/health", "python:3.12-slim"),
    "node": (3000, "/healthz", "node:20-slim"),
    "go": (8080, "/healthz", "gcr.io/distroless/static"),
    "java": (8080, "/actuator/health", "eclipse-temurin:21-jre"),
}
BROKEN_BASES = {"python:3.6-alpine": "pip cannot install the dependencies: no wheels for Python 3.6 on musl"}
VULNERABLE = {"python:3.9-slim": "high", "node:14": "critical"}
SEVERITY = ["none", "low", "medium", "high", "critical"]


def _digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def language_of(url: str) -> str:
    """The simulated analysis: the language named in the repository URL (python by default)."""
    lowered = url.lower()
    return next((lang for lang in ("node", "go", "java") if f"-{lang}" in lowered or f"/{lang}" in lowered), "python")


def _no_fault(kind: str) -> None:
    with fx.transaction() as conn:
        fx.consume_fault(conn, kind)


def _undo_only(ctx: Context, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = fx.undo(ctx, kind, lambda conn, args, result: None)
    return out


# ---- analysis and the Dockerfile --------------------------------------------------


@handler("repo.analyze")
def analyze(ctx: Context, url: str, ref: str = "main") -> dict[str, Any]:
    """Detect language, port, health endpoint and a suitable base image (read-only)."""
    _no_fault("repo.analyze")
    if not url.startswith(("http://", "https://", "git@")):
        raise Failure("repo.NotFound", f"cannot clone {url!r}", retryable=False)
    language = language_of(url)
    port, health, base = LANGUAGES[language]
    return {"language": language, "port": port, "health_path": health, "suggested_base": base, "ref": ref}


@handler("containerkit.dockerfile")
class Dockerfile:
    """Write a Dockerfile for the detected language (a step object: execute, compensate, can_compensate)."""

    def execute(self, ctx: Context, workdir: str, language: str, base_image: str, port: int) -> dict[str, Any]:
        """Write the Dockerfile (simulated: its text is stored as the effect)."""
        text = "\n".join(
            [
                f"FROM {base_image}",
                "WORKDIR /app",
                "COPY . .",
                f"EXPOSE {port}",
                f"# generated for a {language} project",
            ]
        )

        def effect(conn: Any) -> dict[str, Any]:
            return {"path": f"{workdir.rstrip('/')}/Dockerfile", "base_image": base_image, "text": text}

        args = {"workdir": workdir, "language": language, "base_image": base_image, "port": port}
        result: dict[str, Any] = fx.apply(ctx, "containerkit.dockerfile", args, effect)
        return result

    def compensate(self, ctx: Context, **args: Any) -> dict[str, Any]:
        """Delete the generated Dockerfile (nothing to do if it was never written)."""
        return _undo_only(ctx, "containerkit.dockerfile.remove")

    def can_compensate(self) -> bool:
        """A generated file can always be removed."""
        return True


# ---- image -------------------------------------------------------------------------


@handler("docker.build")
def build(ctx: Context, context: str, dockerfile: str, base_image: str, tag: str) -> dict[str, Any]:
    """Build the image; some base images fail (docker.BuildError)."""

    def effect(conn: Any) -> dict[str, Any]:
        if base_image in BROKEN_BASES:
            raise Failure(
                "docker.BuildError",
                f"build of {tag} on {base_image} failed: {BROKEN_BASES[base_image]}",
                retryable=False,
            )
        return {"image_id": _digest(tag, base_image), "tag": tag, "base_image": base_image}

    args = {"context": context, "dockerfile": dockerfile, "base_image": base_image, "tag": tag}
    result: dict[str, Any] = fx.apply(ctx, "docker.build", args, effect)
    return result


@handler("docker.remove_image")
def remove_image(ctx: Context, tag: str) -> dict[str, Any]:
    """Remove this saga's image."""
    return _undo_only(ctx, "docker.remove_image")


def _base_of(image_id: str) -> str | None:
    for e in fx.effects():
        if e["kind"] == "docker.build" and e["status"] == "applied" and e["result"]["image_id"] == image_id:
            base: str = e["result"]["base_image"]
            return base
    return None


@handler("security.scan")
def scan(ctx: Context, image: str, max_severity: str) -> dict[str, Any]:
    """Scan the image (read-only); fails with security.Vulnerable above ``max_severity``."""
    _no_fault("security.scan")
    if max_severity not in SEVERITY:
        raise Failure("security.BadThreshold", f"unknown severity {max_severity!r}", retryable=False)
    base = _base_of(image)
    if base is None:
        raise Failure("security.UnknownImage", f"no image {image} to scan", retryable=False)
    found = VULNERABLE.get(base, "none")
    if SEVERITY.index(found) > SEVERITY.index(max_severity):
        raise Failure(
            "security.Vulnerable", f"{base} has {found} vulnerabilities (allowed: {max_severity})", retryable=False
        )
    return {"image": image, "highest": found}


@handler("docker.tag")
def tag(ctx: Context, image: str, target: str) -> dict[str, Any]:
    """Tag an image for a registry."""
    result: dict[str, Any] = fx.apply(
        ctx, "docker.tag", {"image": image, "target": target}, lambda conn: {"reference": target}
    )
    return result


@handler("docker.untag")
def untag(ctx: Context, target: str) -> dict[str, Any]:
    """Remove this saga's tag."""
    return _undo_only(ctx, "docker.untag")


# ---- registry ----------------------------------------------------------------------


@handler("registry.push")
def push(ctx: Context, reference: str, token: str) -> dict[str, Any]:
    """Upload the tagged image; an empty token is refused (registry.Unauthorized)."""
    if not token:
        raise Failure("registry.Unauthorized", "the registry refused an empty token", retryable=False)

    def effect(conn: Any) -> dict[str, Any]:
        return {"reference": reference, "digest": _digest("push", reference)}

    # The token is a secret: it is not stored with the effect.
    result: dict[str, Any] = fx.apply(ctx, "registry.push", {"reference": reference}, effect)
    return result


@handler("registry.delete")
def delete(ctx: Context, reference: str, token: str) -> dict[str, Any]:
    """Delete this saga's upload."""
    return _undo_only(ctx, "registry.delete")


@handler("registry.inspect")
def inspect_reference(ctx: Context, reference: str) -> dict[str, Any]:
    """Look a published reference up (read-only); registry.NotFound when absent."""
    _no_fault("registry.inspect")
    for e in fx.effects():
        if e["kind"] == "registry.push" and e["status"] == "applied" and e["result"]["reference"] == reference:
            return {"reference": reference, "digest": e["result"]["digest"]}
    raise Failure("registry.NotFound", f"{reference} is not in the registry", retryable=False)


@handler("registry.retire")
def retire(ctx: Context, reference: str, token: str) -> dict[str, Any]:
    """Retire a published reference for good (no undo)."""
    result: dict[str, Any] = fx.apply(
        ctx, "registry.retire", {"reference": reference}, lambda conn: {"retired": reference}
    )
    return result


# ---- Kubernetes -----------------------------------------------------------------------


@handler("k8s.generate_manifests")
def generate_manifests(ctx: Context, app: str, image: str, replicas: int, port: int) -> dict[str, Any]:
    """Write a Deployment and a Service for ``app``."""

    def effect(conn: Any) -> dict[str, Any]:
        return {
            "files": [f"k8s/{app}/deployment.yaml", f"k8s/{app}/service.yaml"],
            "image": image,
            "replicas": replicas,
        }

    args = {"app": app, "image": image, "replicas": replicas, "port": port}
    result: dict[str, Any] = fx.apply(ctx, "k8s.generate_manifests", args, effect)
    return result


@handler("k8s.delete_manifests")
def delete_manifests(ctx: Context, app: str) -> dict[str, Any]:
    """Remove this saga's manifests."""
    return _undo_only(ctx, "k8s.delete_manifests")


@handler("k8s.apply")
def apply_manifests(ctx: Context, namespace: str, app: str, manifests: list[str]) -> dict[str, Any]:
    """Apply the manifests to the cluster."""

    def effect(conn: Any) -> dict[str, Any]:
        return {"url": f"http://{app}.{namespace}.svc.cluster.local", "manifests": manifests}

    result: dict[str, Any] = fx.apply(
        ctx, "k8s.apply", {"namespace": namespace, "app": app, "manifests": manifests}, effect
    )
    return result


@handler("k8s.delete")
def delete_app(ctx: Context, namespace: str, app: str) -> dict[str, Any]:
    """Delete this saga's deployment."""
    return _undo_only(ctx, "k8s.delete")


@handler("k8s.health")
def health(ctx: Context, namespace: str, app: str, path: str, simulate_unhealthy: bool = False) -> dict[str, Any]:
    """Check the deployment's health endpoint (read-only); k8s.Unhealthy when it fails."""
    _no_fault("k8s.health")
    if simulate_unhealthy:
        raise Failure("k8s.Unhealthy", f"GET {path} on {app}.{namespace} answered 503", retryable=False)
    return {"status": "ok", "path": path}


# ---- the analyzer of `on failure { retry saga ... analyze containerkit.analyze_failure }` ----


def _error_fields(error: Any) -> tuple[str, str]:
    if isinstance(error, Mapping):
        return str(error.get("type") or error.get("name") or ""), str(error.get("message", ""))
    return str(getattr(error, "name", type(error).__name__)), str(error)


@handler("containerkit.analyze_failure")
def analyze_failure(ctx: Context, error: Any, input: Mapping[str, Any], attempt: int) -> dict[str, Any] | None:
    """Look at a failed attempt and return input overrides for the next one, or None to give up.

    A base image that did not build or failed the scan is replaced by the
    language's recommended one; anything else (an unhealthy deployment, a bad
    token) is not something a different input can fix.
    """
    name, message = _error_fields(error)
    ctx.logger.info("attempt %d failed with %s: %s", attempt, name, message)
    if name not in ("docker.BuildError", "security.Vulnerable"):
        return None
    recommended = LANGUAGES[language_of(str(input.get("repo", "")))][2]
    if input.get("base_image") == recommended:
        return None
    return {"base_image": recommended}
