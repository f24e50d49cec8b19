"""Settings for the whole app, read from the environment (prefix ``EXPLORER_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob the app has; each limit is listed at ``GET /api/limits``."""

    model_config = SettingsConfigDict(env_prefix="EXPLORER_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = ROOT / "data"
    # One intra-op thread per request: lesson tensors are tiny, and threads beyond one only
    # contend with the other requests the server is answering at the same time.
    torch_threads: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"
    # Signs the learner cookie (issue 16). Unset: one is generated at the first request and kept
    # in the run store, so every web process sharing the store signs with it, with no setup.
    secret_key: str | None = Field(default=None, min_length=16)

    # Request size: the largest JSON body we read, checked while it streams in.
    max_json_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Uploads (multipart): bytes, checked while they stream in, and pixels, checked before decoding.
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # 4096 x 3072 (a 12-megapixel phone photo, 4000 x 3000, fits): the worst request at this
    # size peaks at about 490 MB in a picture worker, under half picture_max_memory_bytes.
    max_image_pixels: int = Field(default=12_582_912, ge=64, description="4096 x 3072")

    # Softmax and cross entropy.
    max_logits: int = Field(default=1000, ge=2, description="logits per row")
    max_batch_rows: int = Field(default=64, ge=1, description="rows in a batch of logits")
    max_abs_logit: float = Field(default=1e6, gt=0, description="largest |logit| accepted")
    min_temperature: float = Field(default=0.01, gt=0)
    max_temperature: float = Field(default=100.0, gt=0)

    # Activation functions.
    max_points: int = Field(default=10_001, ge=2, description="points on an activation curve")
    max_abs_x: float = Field(default=1000.0, gt=0, description="largest |x| on an activation curve")
    max_depth: int = Field(default=100, ge=1, description="layers in the vanishing-gradient stack")
    max_width: int = Field(default=256, ge=1, description="units per layer in that stack")
    max_train_steps: int = Field(default=500, ge=1, description="SGD steps in the dead-ReLU demo")

    # Convolutional neural networks (/lessons/cnn, /api/cnn/*): typed matrices stay small enough
    # to show every sliding-window step; pictures are bounded by max_image_pixels above.
    max_matrix_side: int = Field(default=12, ge=2, description="rows or columns of a typed matrix")
    max_kernel_size: int = Field(default=7, ge=1, description="rows or columns of a kernel")
    max_conv_channels: int = Field(default=4, ge=1, description="channels of a typed C×H×W input")
    max_stride: int = Field(default=4, ge=1)
    max_padding: int = Field(default=3, ge=0)
    max_dilation: int = Field(default=3, ge=1)
    max_out_channels: int = Field(default=16, ge=1, description="filters of the nn.Conv2d demo")
    max_pool_size: int = Field(default=16, ge=1, description="pooling window side and stride")
    # Longest side of a feature-map preview PNG: a page shows maps a few hundred pixels wide, and
    # encoding full-size maps of a 2048² picture would cost more than the convolution itself.
    cnn_preview_side: int = Field(default=384, ge=8, le=4096)

    # Transforms (/lessons/transforms, /api/transforms/apply): stages in one pipeline, the longest
    # side a resize or crop may make, and the largest |factor| of the multiply transform.
    max_pipeline_stages: int = Field(default=12, ge=1, le=100)
    max_resize_side: int = Field(default=1024, ge=8, description="pixels, either side")
    max_multiply_factor: float = Field(default=1000.0, gt=0)
    # Longest side of a stage preview PNG: 12 full-size previews of a large upload would cost
    # more to encode and send than the transforms themselves.
    transform_preview_side: int = Field(default=256, ge=8, le=4096)

    # Gradient calculation: the notes' gradient-descent loop and the chain-rule slider.
    autograd_max_epochs: int = Field(default=500, ge=1)
    autograd_max_learning_rate: float = Field(default=1.0, gt=0)
    autograd_max_abs_x: float = Field(default=100.0, gt=0)

    # Datasets and DataLoaders: POST /api/data/batches.
    max_dataset_size: int = Field(default=10_000, ge=1)
    max_batch_epochs: int = Field(default=20, ge=1, description="epochs of batches listed")
    max_batches_listed: int = Field(default=20_000, ge=1)
    # The Datasets lesson's num_workers control: only written into the code the page shows.
    max_num_workers: int = Field(default=8, ge=0, le=64)

    # Training runs (/runs, /api/runs). The store is SQLite in the data dir unless a SQLAlchemy
    # URL says otherwise (e.g. postgresql+psycopg://user:pass@host/explorer).
    database_url: str | None = None
    # Runs training at once (0: one per CPU), runs waiting in line, and wall time per run.
    runs_max_concurrent: int = Field(default=0, ge=0, le=256)
    runs_max_queue: int = Field(default=16, ge=0, le=10_000)
    # One learner's fair share (issue 16): runs queued or running at once, so one learner cannot
    # fill the queue for the class (a 429 naming this setting past it).
    runs_max_per_learner: int = Field(default=6, ge=1, le=10_000)
    runs_max_seconds: float = Field(default=600.0, gt=0, description="wall time per run")
    # What one learner may keep (issue 16): a run is refused (413, naming this setting) while the
    # learner's finished runs keep this many bytes of files and metrics; they delete some first.
    runs_max_bytes_per_learner: int = Field(default=500 * 1024 * 1024, ge=1024)
    # Retention: finished runs older than this many days are deleted with every file (0: never),
    # and so is each learner's finished run beyond their newest runs_kept_per_learner. A run
    # still followed live, or one a queued or running run resumes from, is kept until it is not.
    runs_retention_days: float = Field(default=30.0, ge=0, le=36_500)
    runs_kept_per_learner: int = Field(default=100, ge=1, le=100_000)
    runs_retention_interval_seconds: float = Field(default=3600.0, ge=1, le=7 * 24 * 3600)
    # Torch threads inside each run's worker process: one keeps N runs from fighting over cores.
    runs_torch_threads: int = Field(default=1, ge=1, le=64)
    # Runs listed by GET /api/runs and /runs, newest first.
    runs_max_listed: int = Field(default=200, ge=1, le=10_000)
    # A class deployment (issue 15, docs/deploy.md): with runner = "celery", runs train on Celery
    # workers fed through broker_url (Redis), and every web process and worker shares the store
    # at database_url (PostgreSQL) for runs, metrics and artefacts; "local" trains on this host.
    runner: Literal["local", "celery"] = "local"
    broker_url: str = "redis://127.0.0.1:6379/0"
    runs_queue_name: str = Field(default="explorer-runs", min_length=1, max_length=100)
    # A worker says it is alive every quarter of this; a run whose worker is silent this long
    # continues on another worker from its last epoch checkpoint, up to runs_max_attempts starts.
    runs_lease_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    runs_max_attempts: int = Field(default=3, ge=1, le=100)
    # How long a worker keeps retrying a commit the store refused (PostgreSQL restarting, say).
    store_retry_seconds: float = Field(default=60.0, gt=0)
    # Seconds a client is told to wait (Retry-After) while the store cannot be reached.
    store_retry_after_seconds: int = Field(default=5, ge=1, le=3600)

    # Classes and identity (issue 16): each a 429 naming the setting past it. Join attempts are
    # counted per learner and per client address, so class codes cannot be guessed at speed.
    classes_max_joins_per_minute: int = Field(default=10, ge=1, le=10_000)
    # ... and from one client address, whoever the learner: a school behind one address joins a
    # whole class in a minute, while one guesser tries 1 in 7e9 of the codes an hour.
    classes_max_joins_per_minute_per_address: int = Field(default=120, ge=1, le=100_000)
    classes_max_per_teacher: int = Field(default=20, ge=1, le=10_000)
    identity_max_links_per_minute: int = Field(default=5, ge=1, le=10_000)
    # Programs one learner may run per minute (the tensors, autograd and playground pages).
    program_max_per_minute: int = Field(default=240, ge=1, le=100_000)

    # Runs overlaid on one chart of the Tracking lesson.
    tracking_max_runs: int = Field(default=8, ge=1, le=50)

    # Checkpoints from outside (POST /api/checkpoints/inspect, /evaluate), each bound checked
    # before the work it guards: the upload's bytes as it streams in; then, before torch.load,
    # the zip archive's entries, its unpacked size (a zip bomb) and its pickle; then the loaded
    # structure's nesting and number of values. A digits-cnn checkpoint is about 30 kB.
    max_checkpoint_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_checkpoint_unpacked_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_checkpoint_entries: int = Field(default=10_000, ge=8, description="zip entries")
    max_checkpoint_pickle_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="the archive's data.pkl"
    )
    max_checkpoint_depth: int = Field(default=32, ge=4, description="containers nested")
    max_checkpoint_items: int = Field(default=100_000, ge=100, description="values in all")

    # Learner programs (the sandbox): each bound is checked before the work it guards.
    program_max_code_chars: int = Field(default=20_000, ge=10)
    program_max_statements: int = Field(default=10_000, ge=1, description="statements run")
    program_max_loop_iterations: int = Field(default=10_000, ge=1)
    program_max_tensor_elements: int = Field(default=1_000_000, ge=1)
    program_max_total_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    program_max_int_bits: int = Field(default=4096, ge=64)
    program_max_seconds: float = Field(default=5.0, gt=0, description="wall time per program")
    program_max_display_elements: int = Field(default=400, ge=1)
    program_max_steps_recorded: int = Field(default=2_000, ge=1)
    program_max_sequence_items: int = Field(default=100_000, ge=1, description="list items")
    program_max_string_chars: int = Field(default=100_000, ge=1)
    program_max_nesting_depth: int = Field(default=50, ge=5, description="AST nesting")
    program_max_stdout_chars: int = Field(default=100_000, ge=1)
    program_max_recorded_numbers: int = Field(default=500_000, ge=1)
    program_max_graph_nodes: int = Field(default=1_000, ge=1)
    # Learner functions, classes, files and figures (issue 13).
    program_max_call_depth: int = Field(default=100, ge=2, le=400, description="nested calls")
    program_max_functions: int = Field(default=2_000, ge=1, description="def and lambda made")
    program_max_classes: int = Field(default=100, ge=1)
    program_max_objects: int = Field(default=100_000, ge=1, description="instances made")
    program_max_files: int = Field(default=20, ge=0, description="in-memory files")
    program_max_file_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
    program_max_figures: int = Field(default=10, ge=0, description="matplotlib figures")
    program_max_figure_pixels: int = Field(default=1_000_000, ge=10_000)
    # Worker processes that run programs (0: one per CPU), and how long a request may wait for one.
    program_workers: int = Field(default=0, ge=0, le=64)
    # Short on purpose: a request that would wait longer for a worker is refused (429) rather
    # than kept waiting while a class's slow programs hold every worker (docs/reliability.md).
    program_queue_seconds: float = Field(default=0.25, gt=0)
    # Start a sandbox worker when the server starts, so the first program does not wait for one.
    program_prewarm: bool = True
    # Admission to the sandbox workers (issue 11): requests waiting for a free worker beyond this
    # many are refused at once (429), and one client may have this many programs running or
    # waiting at a time, so one client cannot fill the pool for the class.
    program_max_waiting: int = Field(default=8, ge=0, le=10_000, description="programs in line")
    program_max_per_client: int = Field(default=2, ge=1, le=10_000)

    # Every answer the sandbox, a lesson page or a picture builds: its size in bytes of JSON (or
    # HTML), enforced while it is built. A program's recording stops with a notice at this size.
    max_answer_bytes: int = Field(default=8 * 1024 * 1024, ge=16 * 1024)

    # Pictures are decoded, transformed and filtered in worker processes of their own (never in
    # the server), each with a memory and a CPU-time limit (0 workers: one per CPU, at most 4).
    picture_workers: int = Field(default=0, ge=0, le=64)
    picture_queue_seconds: float = Field(default=0.25, gt=0)
    picture_max_waiting: int = Field(default=4, ge=0, le=10_000, description="pictures in line")
    picture_max_per_client: int = Field(default=2, ge=1, le=10_000)
    picture_max_seconds: float = Field(default=20.0, gt=0, description="time per picture request")
    picture_max_memory_bytes: int = Field(
        default=1024**3, ge=64 * 1024**2, description="address space a picture worker may add"
    )
    # Start the picture workers when the server starts, so the first picture does not wait.
    picture_prewarm: bool = True

    # Live event streams (GET /api/runs/{id}/events): at most this many open in all, per run and
    # per client; a heartbeat comment keeps idle streams (and the proxies between) open.
    max_streams: int = Field(default=400, ge=1, le=100_000)
    max_streams_per_run: int = Field(default=100, ge=1, le=100_000)
    max_streams_per_client: int = Field(default=16, ge=1, le=100_000)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)

    # The HTTP server: a connection must finish sending a request's headers, and keep its body
    # coming, within these times, and an idle keep-alive connection is closed after the last.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    keep_alive_seconds: float = Field(default=5.0, gt=0)

    # Compute every lesson's default view once in the background at start-up, so the first
    # learner does not wait for the example runs the Transfer, Tracking and Saving lessons train.
    warm_lessons: bool = True

    def limits(self) -> dict[str, int | float]:
        """The limits a client may hit, by setting name, as ``GET /api/limits`` lists them."""
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name.startswith(("max_", "min_")) or "_max_" in name
        }


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests build their own and pass them to ``create_app``."""
    return Settings()
