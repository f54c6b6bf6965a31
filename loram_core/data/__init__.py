"""Text corpora: named datasets and user files, split by document, tokenized into blocks."""

from loram_core.data.loading import load_dataset
from loram_core.data.splits import TextSplits, split_by_key
from loram_core.data.text_files import load_text_file
from loram_core.data.tokens import eval_blocks, random_blocks, tokenize_documents

__all__ = [
    "TextSplits",
    "eval_blocks",
    "load_dataset",
    "load_text_file",
    "random_blocks",
    "split_by_key",
    "tokenize_documents",
]
