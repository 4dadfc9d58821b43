#!/usr/bin/env python3
"""fit.py - the tiny model of train.py, written as common training programs
write their progress, knowing nothing of MLflow or mlflowfs.

It prints its settings and, every epoch, `step: N`, `loss: X` and `acc: Y`
lines on stdout.  With --out DIR it also writes, as Keras and Lightning do:
DIR/hparams.yaml (its settings, once, at the start) and DIR/history.csv (a
header, then one row an epoch, CRLF line ends, the file held open for the
whole fit and flushed after each row, as Keras' CSVLogger writes it), and
DIR/model.pkl at the end.

    python3 fit.py [--lr 0.1] [--epochs 10] [--out DIR]
"""
import argparse
import os
import pickle

from train import data, epoch


def main():
    ap = argparse.ArgumentParser(description="a tiny model that prints and writes its progress")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", help="a folder for hparams.yaml, history.csv and model.pkl")
    a = ap.parse_args()

    print(f"fitting a logistic regression, lr {a.lr}, {a.epochs} epochs", flush=True)
    log = None
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "hparams.yaml"), "w") as f:
            f.write(f"optimizer:\n  name: sgd\n  lr: {a.lr}\nepochs: {a.epochs}\n")
        log = open(os.path.join(a.out, "history.csv"), "w")
        log.write("epoch,acc,loss\r\n")
    rows, w = data(), [0.0, 0.0, 0.0]
    for step in range(a.epochs):
        w, loss, acc = epoch(w, rows, a.lr)
        print(f"step: {step}\nloss: {loss:.6f}\nacc: {acc:.4f}", flush=True)
        if log:
            log.write(f"{step},{acc!r},{loss!r}\r\n")
            log.flush()
    if log:
        log.close()
        with open(os.path.join(a.out, "model.pkl"), "wb") as f:
            pickle.dump({"weights": w, "lr": a.lr, "epochs": a.epochs}, f)


if __name__ == "__main__":
    main()
