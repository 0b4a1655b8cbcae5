"""zoo-plugin-example: the hooks. Factories are "module:attribute" strings, imported on first use, so
`zoo list` stays fast and never imports torch for this plugin; so is the command's code."""

from pathlib import Path

from zoo.api import hookimpl

HERE = Path(__file__).parent


@hookimpl
def register_layers(register):
    register("gated-linear", "zoo_example.layers:GatedLinear")


@hookimpl
def register_models(register):
    register("glu-net", "zoo_example.layers:glu_net")


@hookimpl
def register_datasets(register):
    register("two-spirals", "zoo_example.datasets:two_spirals")


@hookimpl
def register_losses(register):
    register("focal-loss", "zoo_example.extras:FocalLoss")


@hookimpl
def register_optimizers(register):
    register("sgd-momentum", "zoo_example.extras:sgd_momentum")


@hookimpl
def register_schedulers(register):
    register("step-decay", "zoo_example.extras:step_decay")


@hookimpl
def register_transforms(register):
    register("jitter", "zoo_example.extras:jitter")


@hookimpl
def register_metrics(register):
    register("balanced-accuracy", "zoo_example.extras:balanced_accuracy")


@hookimpl
def register_callbacks(register):
    register("stop-at", "zoo_example.extras:StopAt")


@hookimpl
def register_catalogs(register):
    register(HERE / "catalog.yaml")  # its pretrained weights and its recipe


@hookimpl
def register_commands(register):
    def arguments(parser):
        parser.add_argument("--n", type=int, default=400, help="points to draw")

    def run(args):
        from zoo_example.extras import draw

        print(draw(args.n))
        return 0

    register("spirals", run, help="draw the two-spirals data as text", arguments=arguments)
