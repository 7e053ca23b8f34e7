"""An mbrl agent plugin: behaviour cloning by maximum likelihood under a tanh-Gaussian policy."""
