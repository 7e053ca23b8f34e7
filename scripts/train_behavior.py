"""Train a behaviour-policy bundle; the same program as the ``mbrl-train-behavior`` console script."""

from mbrl.online import main

if __name__ == "__main__":
    main()
