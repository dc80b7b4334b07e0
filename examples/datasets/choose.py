"""The MNIST-format dataset an example trains on: real MNIST when found, else Fashion-MNIST (said aloud)."""
from examples.datasets import fashion_mnist, mnist

CHOICES = ('auto', 'mnist', 'fashion_mnist')


def mnist_like(choice='auto'):
    """The dataset module for ``choice`` ('auto', 'mnist' or 'fashion_mnist'), printing which one."""
    if choice == 'mnist' or (choice == 'auto' and mnist.available()):
        dataset = mnist
    else:
        dataset = fashion_mnist
        if choice == 'auto':
            print('MNIST not found (see singa.datasets.mnist for where it looks); using Fashion-MNIST.')
    print('Dataset: %s' % dataset.DATASET.name)
    return dataset
