"""
Train ResNet-50 (or another architecture) on simulated stamps and report
purity, recall and F1 at the selected threshold, overall and per limiting
magnitude, next to the operating point of Zhang et al. (2025).

Everything goes through the public API: ``simulate_stamps`` with different
seeds for the training, validation and test sets, ``ClusterClassifier.fit``
(with a checkpoint after every epoch), ``select_threshold`` (max F1 on the
validation set), ``evaluate`` and ``evaluate_by_magnitude`` on the test set.

Full run (hours on a CPU, minutes on a GPU)::

    python benchmarks/train_resnet50.py --n-train 20000 --epochs 30

The run reported in the ClusterClassifier notes and docs (95 min on 2 CPU
cores: test purity 0.896, recall 0.908, F1 0.902, ROC AUC 0.967)::

    python benchmarks/train_resnet50.py --size 32 --n-train 16000 --n-val 2000 \
        --n-test 4000 --batch 64 --lr 1e-3 --epochs 40 --patience 8 \
        --monitor val_auc --reduce-lr 2 --max-minutes 95 --checkpoint resnet50.zip

Small CPU run (a few minutes), resumable from its checkpoint::

    python benchmarks/train_resnet50.py --n-train 512 --n-val 256 --n-test 256 \\
        --epochs 3 --max-minutes 5 --checkpoint resnet50.ckpt.zip
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

PAPER = {"purity": 0.8930, "recall": 0.7355, "f1": 0.8066}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--architecture", default="resnet50")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--monitor", default=None, choices=["val_loss", "val_auc", "val_f1"],
                        help="validation metric for best-epoch restore and early stopping")
    parser.add_argument("--reduce-lr", type=int, default=0, metavar="EPOCHS",
                        help="divide the learning rate by 3 when val_loss has not improved "
                             "for this many epochs (0: constant learning rate)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop training after this wall time (checked every batch)")
    parser.add_argument("--checkpoint", default=None, help="classifier file saved every epoch")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint if it exists")
    args = parser.parse_args()

    import keras

    from m31clusters.classifier import ClusterClassifier
    from m31clusters.simulate import simulate_stamps

    t0 = time.perf_counter()
    train, ttrain = simulate_stamps(args.n_train, size=args.size, seed=args.seed + 1,
                                    progress=False)
    val, tval = simulate_stamps(args.n_val, size=args.size, seed=args.seed + 2, progress=False)
    test, ttest = simulate_stamps(args.n_test, size=args.size, seed=args.seed + 3,
                                  progress=False)
    print(f"simulated {args.n_train}/{args.n_val}/{args.n_test} stamps in "
          f"{time.perf_counter() - t0:.0f} s; cluster fraction "
          f"{np.mean(ttrain['label']):.2f}")

    if args.resume and args.checkpoint and os.path.exists(args.checkpoint):
        clf = ClusterClassifier.load(args.checkpoint)
        print(f"resumed from {args.checkpoint} after {len(clf.history.get('loss', []))} epochs")
    else:
        clf = ClusterClassifier(args.architecture, input_shape=(args.size, args.size, 2),
                                seed=args.seed, learning_rate=args.lr)

    class TimeLimit(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if args.max_minutes and time.perf_counter() - t_fit > 60 * args.max_minutes:
                self.model.stop_training = True

    callbacks = [TimeLimit()]
    if args.reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=1 / 3, patience=args.reduce_lr, min_lr=1e-6, verbose=1))
    t_fit = time.perf_counter()
    clf.fit(train, ttrain["label"], validation=(val, tval["label"]), epochs=args.epochs,
            batch_size=args.batch, early_stopping=args.patience, monitor=args.monitor,
            checkpoint=args.checkpoint,
            overwrite=True, callbacks=callbacks, progress=True)
    fit_s = time.perf_counter() - t_fit
    n_epochs = len(clf.history["loss"])
    print(f"trained {n_epochs} epochs in {fit_s / 60:.1f} min "
          f"({n_epochs * args.n_train / fit_s:.1f} stamps/s incl. validation)")

    threshold = clf.select_threshold(val, tval["label"], metric="f1")
    m = clf.evaluate(test, ttest["label"])
    print(f"\nthreshold (max F1 on validation) = {threshold:.3f}")
    print(f"{'':10s} {'purity':>8s} {'recall':>8s} {'F1':>8s} {'ROC AUC':>8s}")
    print(f"{'test':10s} {m['purity']:8.4f} {m['recall']:8.4f} {m['f1']:8.4f} "
          f"{m['roc_auc']:8.4f}")
    print(f"{'paper':10s} {PAPER['purity']:8.4f} {PAPER['recall']:8.4f} {PAPER['f1']:8.4f}")
    table = clf.evaluate_by_magnitude(test, ttest["label"], ttest["imag"],
                                      limits=(19, 20, 21, 22, 23))
    print("\nby limiting i magnitude (stamps with imag < limit):")
    table[["mag_limit", "n", "n_cluster", "purity", "recall", "f1", "roc_auc"]].pprint(
        max_width=120)
    if args.checkpoint:
        clf.save(args.checkpoint, overwrite=True)


if __name__ == "__main__":
    main()
