"""The one module that talks to the Anthropic API (real or emulated): nothing else imports anthropic.

INTERFACE CONTRACT (the job engine codes against exactly these names; keep them stable):

    PROMPT_VERSION: str
    @dataclass NoteInput(custom_id, name, path, title, body, tags, fields, candidates, taxonomy)
    @dataclass Answer(tags: list[str] | None, description: str | None, related: list[str] | None)
    @dataclass Outcome(state, answer, usage, error, raw)    # state: succeeded|errored|expired|canceled
    @dataclass BatchStatus(id, processing_status, request_counts: dict, ended_at)
    class ApiError(Exception)       # transport/API failure of a whole call (after SDK retries)

    build_request(note: NoteInput, *, model: str) -> dict        # params for messages.create
    request_size(params: dict) -> int                            # bytes it adds to a batch body
    send_one(params: dict, *, fields, candidates) -> Outcome     # real-time Messages API call
    async send_one_async(client, params, *, fields, candidates) -> Outcome
    async_client() -> anthropic.AsyncAnthropic                   # for parallel mode
    submit_batch(requests: Iterable[tuple[str, dict]]) -> BatchStatus
    get_batch(batch_id: str) -> BatchStatus
    iter_results(batch_id: str, *, fields_for, candidates_for) -> Iterator[tuple[str, Outcome]]
        # streams (custom_id, Outcome); fields_for/candidates_for: custom_id -> list, used to
        # validate each answer; unknown ids still yielded (the caller logs and ignores them)
    cancel_batch(batch_id: str) -> BatchStatus
    parse_answer(message: dict, *, fields, candidates) -> Answer  # raises InvalidAnswer
    cost(usage: dict, *, model: str, batch: bool) -> Decimal
    estimate(*, n_items: int, avg_input_tokens: int, model: str, batch: bool) -> Decimal

Filled in by the emulator/client work (issue 4).
"""
