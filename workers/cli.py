"""The ``forecaster`` command line: where the library (``forecaster``, which imports neither
Kafka nor this package) and the Kafka side (``workers``) meet.

Bad input (a missing file, a bad column, a corrupt checkpoint) prints one line and exits 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from kafka.errors import KafkaError
from pydantic import BaseModel, ValidationError

import forecaster
from forecaster.data import Columns, load_series
from forecaster.errors import ForecasterError
from forecaster.models import FAMILIES, ModelConfig, ScalerConfig
from forecaster.recipes import BAND_RATE
from forecaster.training import TrainConfig

# Fields of the configs that get a flag of their own (--d-model, --epochs, …).
_MODEL_FLAGS = ("d_model", "n_layer", "n_head", "n_kv_head", "window", "d_ff", "dropout", "horizon", "members")
_TRAIN_FLAGS = tuple(f for f in TrainConfig.model_fields if f not in ("calibrate",))
_SCALER_FLAGS = ("smooth_level", "smooth_season", "seasonal_form")


def _add_fields(p: argparse.ArgumentParser, model: type[BaseModel], names: tuple[str, ...]) -> None:
    for name in names:
        info = model.model_fields[name]
        choices = get_args(info.annotation) if get_origin(info.annotation) is Literal else None
        kind = str if choices else float if info.annotation in (float, float | None) else int
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            choices=choices,
            default=None,
            help=f"{info.description or name} (default {info.default})",
        )


def _pick(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _add_data(p: argparse.ArgumentParser, with_path: bool = True) -> None:
    if with_path:
        p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--layout", choices=("auto", "long", "wide", "m4"), default="auto")
    p.add_argument("--stream-col", default="stream", help="long layout: stream id column")
    p.add_argument("--ts-col", default="ts", help="time column (numbers: epoch seconds; text: dates)")
    p.add_argument("--value-col", default="value", help="value column (of a wide table: the one to read)")


DATA_HELP = "CSV (optionally .gz) or parquet: long, wide or M4 layout"


def _columns(args: argparse.Namespace) -> Columns:
    return Columns(args.stream_col, args.ts_col, args.value_col)


def _seasons_text(scaler: ScalerConfig) -> str:
    if not scaler.seasons:
        return "none"
    periods = ", ".join(map(str, scaler.seasons))
    return f"{periods} {scaler.seasonal_form}; alpha {scaler.smooth_level}, gamma {scaler.smooth_season}"


def cmd_train(args: argparse.Namespace) -> int:
    data: Any = args.data
    if args.from_topic:
        import pandas as pd

        from workers.history import read_history
        from workers.settings import KafkaSettings

        since = None
        if args.since is not None:
            when = pd.Timestamp(args.since)  # ValueError, in one line, if it is not a time
            since = (when.tz_localize("UTC") if when.tzinfo is None else when).timestamp()
        history = read_history(
            _settings(KafkaSettings, args), args.from_topic, since, args.max_records, progress=not args.quiet
        )
        skipped = ", ".join(f"{n} {reason}" for reason, n in history.rejected.most_common()) or "none"
        print(
            f"read {history.records} records of {args.from_topic}: {len(history.frame)} observations "
            f"of {history.frame['stream'].nunique()} streams (rejected: {skipped})"
        )
        data, args.layout, columns = history.frame, "long", Columns()
    else:
        columns = _columns(args)
    fc, report = forecaster.train(
        data,
        args.model,
        out=args.out,
        seasons=args.season,
        quantiles=args.quantiles,
        lags=args.lags,
        calibrate=not args.no_calibrate,
        band_rate=args.band_rate,
        layout=args.layout,
        columns=columns,
        device="cpu",
        progress=not args.quiet,
        **_pick(args, _SCALER_FLAGS + _MODEL_FLAGS + _TRAIN_FLAGS),
    )
    fits = report.members or [report]
    epochs = ", ".join(f"{r.best_epoch} of {r.epochs}" for r in fits)
    print(
        f"saved {args.out} (seasons {_seasons_text(fc.config.scaler)}, "
        f"best epoch{'s' if len(fits) > 1 else ''} {epochs}, {report.minutes} min): "
        + ", ".join(f"{k} {v}" for k, v in report.validation.items())
    )
    if report.left_out:
        print(f"left out {len(report.left_out)} series too short to train on (e.g. {report.left_out[0]!r})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    scores = forecaster.evaluate(
        args.model,
        args.data,
        args.test,
        horizon=args.horizon,
        season=args.season,
        rolling=args.rolling,
        layout=args.layout,
        columns=_columns(args),
        device=args.device,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(scores.metrics, indent=2) + "\n")
    if args.plot:
        scores.plot(args.plot, f"{args.model} on {Path(args.data).name}")
    shown = {k: v for k, v in scores.metrics.items() if k != "naive2"}
    print("  ".join(f"{k} {v}" for k, v in shown.items()))
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from workers import broker

    if args.action == "start":
        info = broker.start(args.port)
        print(f"broker running on {info.bootstrap} (pid {info.pid}, log {info.log})")
    elif args.action == "stop":
        print("broker stopped" if broker.stop(args.port) else f"no broker was running on port {args.port}")
    else:
        info = broker.status(args.port)
        print(f"broker running on {info.bootstrap} (pid {info.pid})" if info else f"no broker on port {args.port}")
        return 0 if info else 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import gc
    import logging
    import signal

    from prometheus_client import CollectorRegistry, start_http_server

    from workers.forecast_worker import ForecastWorker
    from workers.sender import LOG_FORMAT
    from workers.settings import WorkerSettings
    from workers.topics import ensure_topics, worker_topics

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = _settings(WorkerSettings, args)
    ensure_topics(settings, worker_topics(settings, args.partitions))
    if settings.threads:  # per process: set before the model runs
        import torch

        torch.set_num_threads(settings.threads)
    registry = CollectorRegistry()
    worker = ForecastWorker(settings, registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    # Start-up objects (torch, the model) are long-lived: taking them out of the collector's
    # view cut full collections from ~100-200 ms, a p99 latency of their own, to a few ms.
    gc.collect()
    gc.freeze()
    worker.run()
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from workers import publisher
    from workers.settings import KafkaSettings
    from workers.topics import ensure_topics

    settings = _settings(KafkaSettings, args)
    if args.synthetic:
        if args.streams is None or args.rate is None or args.duration is None:
            raise ValueError("--synthetic needs --streams N, --rate EVENTS_PER_S and --duration S")
        events = publisher.synthetic(args.streams, args.rate, args.duration, args.seed)
        total, speed = math.ceil(args.rate * args.duration), 1.0
    else:
        series = load_series(args.data, args.layout, _columns(args))
        events, total, speed = publisher.replay(series), sum(len(s) for s in series), args.speed
    ensure_topics(settings, {args.topic: args.partitions})
    producer = KafkaProducer(**{"linger_ms": 5, **settings.options_for(KafkaProducer)})
    try:
        summary = publisher.publish(producer, args.topic, events, speed, total, progress=not args.quiet)
    finally:
        producer.close()
    print(f"{summary} to {args.topic}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer

    from workers import watcher
    from workers.settings import KafkaSettings

    settings = _settings(KafkaSettings, args)
    consumer = KafkaConsumer(**{"enable_auto_commit": False, **settings.options_for(KafkaConsumer)})
    try:
        watcher.watch(
            consumer,
            args.topic,
            set(args.stream) if args.stream else None,
            args.json,
            args.from_beginning,
            args.max_messages,
            args.duration,
            args.rows,
        )
    finally:
        consumer.close()
    return 0


def cmd_swap(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from forecaster.checkpoint import checkpoint_bytes, checkpoint_from_bytes
    from workers.control import send_swap
    from workers.settings import KafkaSettings
    from workers.topics import ensure_topics

    blob = checkpoint_bytes(args.model)
    model, meta = checkpoint_from_bytes(blob)  # what each worker will do: refused here if a worker would refuse it
    settings = _settings(KafkaSettings, args)
    ensure_topics(settings, {args.control_topic: 1})
    producer = KafkaProducer(**settings.options_for(KafkaProducer))
    try:
        swap = send_swap(producer, args.control_topic, args.group, blob, "shadow" if args.shadow else "serve")
        producer.flush()
    finally:
        producer.close()
    then = "steps it beside the serving model, scored, unpublished" if args.shadow else "serves it"
    print(
        f"swap {swap}: {model.config.family} {meta.get('version')} ({len(blob) / 1e6:.2f} MB) handed to group "
        f"{args.group!r} on {args.control_topic}; each worker warms it up, then {then}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from workers import demo

    demo.run(
        demo.DemoOptions(
            model=args.model,
            duration=args.duration or None,
            speed=args.speed,
            metrics_port=args.metrics_port,
            bootstrap=args.bootstrap,
            rows=args.rows,
            as_json=args.json,
        )
    )
    return 0


def _settings(cls: type[BaseModel], args: argparse.Namespace) -> Any:
    """Settings of ``cls`` (a ``workers.settings`` class) from the flags, environment and --config."""
    flags = {k: getattr(args, k, None) for k in cls.model_fields if k != "kafka"}
    if args.kafka_option:
        flags["kafka"] = dict(_option(o) for o in args.kafka_option)
    return cls.load(flags, getattr(args, "config", None))


def _add_kafka(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kafka-option",
        action="append",
        metavar="KEY=VALUE",
        help="extra kafka-python client option, repeatable (security_protocol=SASL_SSL, …)",
    )


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--kafka-option {text!r}: expected KEY=VALUE, e.g. security_protocol=SASL_SSL")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="forecaster", description="Streaming neural time-series forecasting on Kafka.")
    p.add_argument("--version", action="version", version=f"forecaster {forecaster.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("broker", help="the embedded local Kafka-protocol broker (in memory; development and demo)")
    b.add_argument("action", choices=("start", "stop", "status"))
    b.add_argument("--port", type=int, default=9092)
    b.set_defaults(run=cmd_broker)

    t = sub.add_parser("train", help="train a model on series from a file or a topic; writes a checkpoint directory")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=DATA_HELP)
    source.add_argument("--from-topic", metavar="TOPIC", help="the history of an input topic (as the worker reads it)")
    _add_data(t, with_path=False)
    t.add_argument("--bootstrap", default=None, help="--from-topic: Kafka bootstrap servers (default localhost:9092)")
    t.add_argument("--since", help="--from-topic: records from this time on (ISO 8601, UTC unless it says)")
    t.add_argument("--max-records", type=int, help="--from-topic: at most this many of the newest records")
    _add_kafka(t)
    t.add_argument("--model", required=True, choices=FAMILIES, help="model family")
    t.add_argument("--out", required=True, help="checkpoint directory to write")
    t.add_argument("--quantiles", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    t.add_argument("--lags", type=int, default=0, help=ScalerConfig.model_fields["lags"].description + " (default 0)")
    t.add_argument(
        "--season",
        type=int,
        action="append",
        metavar="M",
        help="a seasonal period in observations, repeatable (--season 24 --season 168; --season 1: none); "
        "default: candidates from the timestamps (hourly: 24 and 168, half-hourly: 48 and 336, daily: 7, "
        "monthly: 12, …), kept if they beat the random walk on the training data; smoothing weights chosen there "
        "too unless --smooth-level/--smooth-season are given",
    )
    _add_fields(t, ScalerConfig, _SCALER_FLAGS)
    _add_fields(t, ModelConfig, _MODEL_FLAGS)
    _add_fields(t, TrainConfig, _TRAIN_FLAGS)
    t.add_argument(
        "--band-rate",
        type=float,
        default=BAND_RATE,
        help="how fast each stream's band widens or narrows towards its nominal coverage as the stream is served "
        f"(default {BAND_RATE}; 0: the band calibrated on validation, for every stream)",
    )
    t.add_argument("--no-calibrate", action="store_true", help="keep the quantile band as trained")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=cmd_train)

    s = sub.add_parser("serve", help="run a forecast worker: consume observations, produce forecasts")
    s.add_argument("--config", help="JSON file of settings (flags and FORECASTER_* variables override it)")
    from workers.settings import WorkerSettings

    for name, info in WorkerSettings.model_fields.items():
        if name == "kafka":
            continue
        flag, text = f"--{name.replace('_', '-')}", f"{info.description} (default {info.default})"
        if info.annotation is bool:  # a switch: given or not (None leaves the setting as configured)
            s.add_argument(flag, action="store_true", default=None, help=text)
        else:
            kind = {int: int, float: float}.get(info.annotation, str)
            s.add_argument(flag, type=kind if kind is not str else None, default=None, help=text)
    _add_kafka(s)
    s.add_argument("--partitions", type=int, default=4, help="partitions of the input topic if it must be created")
    s.set_defaults(run=cmd_serve)

    pub = sub.add_parser("publish", help="replay a price file or synthetic streams to the input topic")
    pub.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default localhost:9092)")
    pub.add_argument("--topic", default="prices")
    source = pub.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", dest="data", help="prices: CSV (optionally .gz) or parquet, long or wide layout")
    source.add_argument("--synthetic", action="store_true", help="geometric Brownian motion with a daily cycle")
    _add_data(pub, with_path=False)
    pub.add_argument(
        "--speed",
        type=float,
        help="--csv: times real (event) time, e.g. 86400 = a day per second; default as fast as possible",
    )
    pub.add_argument("--streams", type=int, help="--synthetic: how many streams")
    pub.add_argument("--rate", type=float, help="--synthetic: events per second, over all streams")
    pub.add_argument("--duration", type=float, help="--synthetic: seconds")
    pub.add_argument("--seed", type=int, default=0)
    pub.add_argument("--partitions", type=int, default=4, help="partitions of the topic if it must be created")
    pub.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_kafka(pub)
    pub.set_defaults(run=cmd_publish)

    w = sub.add_parser("watch", help="show forecasts as they arrive: a live table, or JSON lines")
    w.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default localhost:9092)")
    w.add_argument("--topic", default="forecasts")
    w.add_argument("--stream", action="append", help="only this stream (repeatable)")
    w.add_argument("--json", action="store_true", help="print each forecast message as a JSON line")
    w.add_argument("--from-beginning", action="store_true", help="start at the topic's first forecast, not its end")
    w.add_argument("--max-messages", type=int, help="stop after this many forecasts")
    w.add_argument("--duration", type=float, help="stop after this many seconds")
    w.add_argument("--rows", type=int, default=20, help="table: the most recently updated streams shown")
    _add_kafka(w)
    w.set_defaults(run=cmd_watch)

    sw = sub.add_parser("swap", help="hand a new model to every worker of a group while they run (or an old one back)")
    sw.add_argument("--model", required=True, help="checkpoint directory or bundled family name")
    sw.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default localhost:9092)")
    sw.add_argument("--group", default="forecaster", help="the workers' consumer group")
    sw.add_argument("--control-topic", default="forecaster.control")
    sw.add_argument(
        "--shadow",
        action="store_true",
        help="score the model beside the serving one without publishing it; a swap of it without --shadow "
        "promotes it at once (its state is warm)",
    )
    _add_kafka(sw)
    sw.set_defaults(run=cmd_swap)

    d = sub.add_parser("demo", help="the whole service locally: broker, worker, real prices replayed, live table")
    d.add_argument("--model", default="lstm", help="bundled family (rnn, lstm, gru, transformer) or checkpoint dir")
    d.add_argument("--duration", type=float, default=60.0, help="seconds to run (0: until Ctrl-C)")
    d.add_argument("--speed", type=float, default=5 * 86_400, help="replay speed: event seconds per second")
    d.add_argument("--metrics-port", type=int, default=9100, help="worker metrics (another free port if taken)")
    d.add_argument("--bootstrap", help="use this running Kafka instead of starting the embedded broker")
    d.add_argument("--rows", type=int, default=20)
    d.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    d.set_defaults(run=cmd_demo)

    e = sub.add_parser("evaluate", help="score a model or baseline on held-out data (sMAPE, MASE, OWA, coverage)")
    e.add_argument("--model", required=True, help="checkpoint directory, bundled name, or naive | snaive | naive2")
    _add_data(e)
    e.add_argument("--test", help="held-out continuation of --data (same series); default: the last H values")
    e.add_argument(
        "--horizon", type=int, help="steps to score (baselines: default 8; a model: its first H, default all)"
    )
    e.add_argument("--season", type=int, help="seasonal period for MASE and the baselines (default: from the data)")
    e.add_argument("--rolling", action="store_true", help="also score every origin inside the held-out span")
    e.add_argument("--json", help="write the metrics here")
    e.add_argument("--plot", help="PNG of a few series: history, truth, forecast, 0.1–0.9 band")
    e.add_argument("--device", default="auto")
    e.set_defaults(run=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ValidationError as e:
        err = e.errors()[0]
        print(f"forecaster: error: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
    except (ForecasterError, ValueError, OSError) as e:
        print(f"forecaster: error: {e}", file=sys.stderr)
    except KafkaError as e:  # e.g. no broker at --bootstrap: the client's own words say which
        print(f"forecaster: error: Kafka: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("forecaster: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
