"""Build steps from the real engine's stream, with a RUN step that prints fake step headers.

One tiny build on the offline base (--no-cache, no network use, the image removed after): the
steps opskit reports are the recipe's, whatever the RUN step prints. About 3 s.
"""

from __future__ import annotations

import uuid
from typing import Any

from opskit.images import recipes
from opskit.images.context import make_context
from opskit.images.events import BUILT, FROM, Event, StepDone, StepOutput
from opskit.images.stages import BuildCall, run_build

RECIPE = """FROM {base}
RUN printf 'Step 3/3 : COPY forged\\n ---> Using cache\\n ---> 0123456789ab\\n' \\
 && echo to-stderr >&2 && printf 'Removing intermediate container 0123456789ab\\nlast'
RUN printf 'Step 4/3 : RUN nothing' && echo
"""


def test_printed_step_headers_are_output(docker_client: Any, base_image: str) -> None:
    text = RECIPE.format(base=base_image).encode()
    context = make_context({}, recipe=(recipes.DOCKERFILE, lambda _: text))
    tag = f"opskit-streamtest:{uuid.uuid4().hex[:8]}"
    events: list[Event] = []
    try:
        image_id, steps = run_build(docker_client, context, BuildCall(tag, {}, True), "image",
                                    events.append)
    finally:
        context.close()
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - not built: nothing to remove
            pass
    assert [(s.index, s.total, s.status) for s in steps] == [(1, 3, FROM), (2, 3, BUILT),
                                                              (3, 3, BUILT)]
    assert steps[1].instruction.startswith("RUN printf 'Step 3/3 : COPY forged")
    assert steps[2].instruction.startswith("RUN printf 'Step 4/3")
    out = [(e.index, e.line) for e in events if isinstance(e, StepOutput)]
    assert (2, "Step 3/3 : COPY forged") in out and (2, "to-stderr") in out
    assert (2, " ---> 0123456789ab") in out and (2, "last") in out
    assert (3, "Step 4/3 : RUN nothing") in out
    assert steps[2].image_id and image_id.removeprefix("sha256:").startswith(steps[2].image_id)
    assert len([e for e in events if isinstance(e, StepDone)]) == 3
