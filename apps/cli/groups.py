"""The CLI's command groups. Each area module decorates its commands onto these apps.

Area modules (``narrate``, ``vlm``, ``browser``, ``robot``) import heavy libraries (torch, Playwright,
MuJoCo) inside their command functions, so ``agentkit --help`` stays fast and works without extras.
"""

import typer

app = typer.Typer(
    name="agentkit",
    help="Streaming video and embodied agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
eval_app = typer.Typer(help="Evaluate a policy on a benchmark.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (speed, memory).", no_args_is_help=True)
verify_app = typer.Typer(help="Correctness checks users run on their own checkpoints.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")
app.add_typer(verify_app, name="verify")
