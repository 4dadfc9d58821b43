#!/usr/bin/env python3
"""train.py - a tiny training program that knows nothing of MLflow.

It fits a logistic regression to a fixed synthetic data set by gradient
descent, and writes what it does as plain files into RUN, a run folder of
an mlflowfs mount: its settings to params/, the loss and accuracy of every
epoch appended to metrics/ (one line, one point), the pickled model to
artifacts/model/, and FINISHED to status.  Without a mount, RUN is just a
folder and the same files are there.

    python3 train.py [--lr 0.1] [--epochs 10] RUN
"""
import argparse
import math
import os
import pickle
import random


def data(n=200, seed=7):
    """Two features, a label from a noisy linear rule."""
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        x1, x2 = rnd.uniform(-1, 1), rnd.uniform(-1, 1)
        rows.append((x1, x2, 1 if 1.5 * x1 - x2 + rnd.gauss(0, 0.3) > 0 else 0))
    return rows


def epoch(w, rows, lr):
    """One pass of gradient descent; the loss and accuracy after it."""
    g = [0.0, 0.0, 0.0]
    for x1, x2, y in rows:
        p = 1 / (1 + math.exp(-(w[0] + w[1] * x1 + w[2] * x2)))
        for i, x in enumerate((1.0, x1, x2)):
            g[i] += (p - y) * x / len(rows)
    w = [wi - lr * gi for wi, gi in zip(w, g)]
    loss = acc = 0.0
    for x1, x2, y in rows:
        p = 1 / (1 + math.exp(-(w[0] + w[1] * x1 + w[2] * x2)))
        loss -= (y * math.log(p) + (1 - y) * math.log(1 - p)) / len(rows)
        acc += ((p > 0.5) == bool(y)) / len(rows)
    return w, loss, acc


def main():
    ap = argparse.ArgumentParser(description="a tiny model, tracked by plain file writes")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("run", help="the run folder (made with mkdir in an mlflowfs mount)")
    a = ap.parse_args()

    for key, value in (("lr", a.lr), ("epochs", a.epochs)):
        with open(os.path.join(a.run, "params", key), "w") as f:
            f.write(f"{value}\n")
    rows, w = data(), [0.0, 0.0, 0.0]
    # Opened once and written line by line, as a training loop logs.
    with open(os.path.join(a.run, "metrics", "loss"), "a") as loss_f, \
            open(os.path.join(a.run, "metrics", "acc"), "a") as acc_f:
        for step in range(a.epochs):
            w, loss, acc = epoch(w, rows, a.lr)
            loss_f.write(f"{step} {loss:.6f}\n")
            acc_f.write(f"{step} {acc:.4f}\n")
            loss_f.flush()
            acc_f.flush()
    model = os.path.join(a.run, "artifacts", "model")
    os.makedirs(model, exist_ok=True)
    with open(os.path.join(model, "model.pkl"), "wb") as f:
        pickle.dump({"weights": w, "lr": a.lr, "epochs": a.epochs}, f)
    with open(os.path.join(a.run, "status"), "w") as f:
        f.write("FINISHED\n")


if __name__ == "__main__":
    main()
