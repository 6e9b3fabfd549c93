"""`hsviewer selftest`: proves an installation (or a frozen bundle) works, headless."""

from __future__ import annotations

import time


def selftest() -> int:
    from hsviewer.core import Reduction, image_svd, load_model, reduce_layer
    from hsviewer.core.resources import default_image, default_text

    start = time.perf_counter()
    image = image_svd(default_image())
    print(
        f"image SVD: {default_image().name} {image.image.shape[0]} x {image.image.shape[1]}, rank {image.rank}, "
        f"{image.components} components keep {image.variance_kept():.2f}%"
    )
    handle = load_model("default", on_event=_print_step)
    for layer in (0, handle.n_layers // 2):
        r = reduce_layer(handle, default_text(), layer, Reduction(95.0))
        print(
            f"layer {layer}: {r.components} components keep {r.variance_kept:.2f}%, correlation "
            f"{r.correlation:.4f}, loss {r.clean_loss:.4f} -> {r.loss:.4f}"
        )
    print(f"selftest passed in {time.perf_counter() - start:.1f} s")
    return 0


def _print_step(event: object) -> None:
    from hsviewer.core.events import Progress

    if isinstance(event, Progress):
        print(event.message)
