"""The short reference of every keyword: its syntax and one sentence (keyword hover, completion docs)."""

from __future__ import annotations

__all__ = ["REFERENCE", "keyword_doc"]

# keyword -> (syntax, what it means). docs/language.md is the long form.
REFERENCE: dict[str, tuple[str, str]] = {
    "import": ('import "FILE.saga"', "Brings the sagas of another file (relative to this one) into scope for `call`."),
    "saga": ('saga NAME [version "V"] { ... }', "Declares a saga: its input, policies, steps and output."),
    "version": ('version "V"', "The saga's version, recorded with every run."),
    "description": ('description "TEXT"', "Free text shown by `plan`, `render` and the editor."),
    "input": ("input { NAME: TYPE [secret] [= DEFAULT] ... }", "The saga's input fields, or `input schema FILE`."),
    "schema": ('input schema "FILE" | output schema "FILE"', "A JSON Schema file that checks the input or a result."),
    "secret": ("NAME: TYPE secret", "The field is never written to logs or events in clear."),
    "output": ("output { NAME: EXPR ... }", "The result of a completed run, computed from the input and the steps."),
    "defaults": ("defaults { timeout D  retry ... }", "The timeout and retry policy of steps that set none."),
    "timeout": (
        "timeout DURATION",
        "A deadline: for a step's call, an undo, or the whole saga (then it is cancelled).",
    ),
    "retry": (
        "retry attempts N | forever [backoff D [xM] [max D]] [jitter] [on E, ...] [except E, ...]",
        "How often a failing call is tried again, and how long to wait in between.",
    ),
    "attempts": ("retry attempts N", "Tries in all, the first one included."),
    "forever": ("retry forever", "Retries until the call succeeds (only after the point of no return)."),
    "backoff": ("backoff D [xM] [max D]", "The first delay, multiplied by M after each try, capped at max."),
    "max": ("backoff D xM max D", "The longest delay between two tries."),
    "jitter": ("retry ... jitter", "Randomizes each delay so that many runs do not retry in step."),
    "on": ("retry ... on E, ... | on failure { ... }", "The error names a retry applies to, or the failure policy."),
    "except": ("retry ... except E, ...", "Error names that are never retried."),
    "compensation": (
        "compensation { order reverse|parallel  retry ...  timeout D }",
        "How undos run when the saga rolls back.",
    ),
    "order": ("order reverse | order parallel", "Undos one at a time, or independent undos at the same time."),
    "reverse": ("order reverse", "Undo one step at a time, the latest completed first."),
    "parallel": (
        "parallel { step ... }  |  order parallel",
        "Steps that start together (the next step waits for all), or undos that run together.",
    ),
    "failure": (
        "on failure { siblings wait|cancel  retry saga ... }",
        "What the saga does when a step fails for good.",
    ),
    "siblings": (
        "siblings wait | siblings cancel",
        "Let steps still running finish, or cancel them, before rolling back.",
    ),
    "wait": ("siblings wait", "Steps still running when one fails are let finish, then compensated."),
    "cancel": ("siblings cancel", "Steps still running when one fails are cancelled, then compensated."),
    "analyze": (
        "retry saga attempts N [backoff ...] analyze NS.HANDLER",
        "A handler that sees the failure after a clean rollback and may change the input for the next attempt.",
    ),
    "step": (
        "[pivot|readonly|retriable] step NAME [for V in E [limit N]] [after A, B] [when E] { ... }",
        "One unit of work: an action (do, call or use), its undo and its policies.",
    ),
    "pivot": ("pivot step NAME { do ... }", "The point of no return: no undo, and at most one per saga."),
    "readonly": ("readonly step NAME { do ... }", "A step without side effects: it needs no undo."),
    "retriable": ("retriable step NAME { do ... retry ... }", "A step after the pivot: retried, never undone."),
    "for": (
        "step NAME for ITEM in EXPR [limit N]",
        "Fan-out: the step runs once per item; each item has its own undo.",
    ),
    "in": ("for ITEM in EXPR", "The list a fan-out step runs over."),
    "limit": ("for ITEM in EXPR limit N", "At most N items run at the same time."),
    "after": ("step NAME after A, B", "Runs after these steps, in place of the step written before it."),
    "when": ("step NAME when EXPR", "Runs only when EXPR is true; a skipped step's output is null."),
    "do": ("do NS.HANDLER(ARG: EXPR, ...)", "The step's action: a registered handler called with named arguments."),
    "undo": ("undo NS.HANDLER(ARG: EXPR, ...)", "Reverses the step when the saga rolls back; `result` is its output."),
    "use": ("use NS.STEP(ARG: EXPR, ...)", "A step object that provides both the action and its undo."),
    "call": ("call SAGA(ARG: EXPR, ...)", "Runs another saga as this step; rolling back undoes its completed steps."),
    "and": ("A and B", "True when both are true (B is evaluated only when A is true)."),
    "or": ("A or B", "True when either is true (B is evaluated only when A is false)."),
    "not": ("not A", "True when A is false."),
    "true": ("true", "The boolean true."),
    "false": ("false", "The boolean false."),
    "null": ("null", "No value: what a skipped step's output is."),
}


def keyword_doc(word: str) -> str | None:
    """A keyword's reference as Markdown (None when ``word`` is no keyword)."""
    entry = REFERENCE.get(word)
    if entry is None:
        return None
    syntax, text = entry
    return f"```saga\n{syntax}\n```\n{text}"
