"""The router's `batches` setting: where the Batch API keeps its files, and how hard it runs."""

from pydantic import BaseModel, ConfigDict, Field


class BatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files_url: str = Field(
        default="~/.smmf-serve/files",
        description="Where uploaded files and batch results are kept: a local directory (make run's), a path every "
                    "node shares, or an fsspec URL (s3://..., gs://..., with its fsspec plug-in installed). The "
                    "files' records are in the router's state store.",
    )
    max_file_bytes: int = Field(default=200 * 1024 * 1024, gt=0,
                                description="Largest uploaded file (OpenAI's limit for batch input: 200 MB); 413 above.")
    max_lines: int = Field(default=50_000, gt=0, description="Most requests in one batch (OpenAI's limit).")
    # As many as an llm replica has places (max_num_seqs): lines wait in the batch band of its fair queue,
    # behind people's requests, and leave a place free for them (serve_app/fairness/).
    concurrency: int = Field(default=16, gt=0, description="Lines of one batch in flight at once.")
