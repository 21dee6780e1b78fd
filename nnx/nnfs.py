"""The book's class names mapped onto nnx, so a chapter's code runs after ``from nnx.nnfs import *``.

Nothing here patches NumPy; use ``nnx.seed(0)`` (or the book's own ``nnfs.init()``) for its random numbers.
"""

from nnx import activations as _activations
from nnx import layers as _layers
from nnx import losses as _losses
from nnx import metrics as _metrics
from nnx import model as _model
from nnx import optimizers as _optimizers

Layer_Dense = _layers.Dense
Layer_Dropout = _layers.Dropout
Layer_Input = _layers.Input
Activation_ReLU = _activations.ReLU
Activation_Softmax = _activations.Softmax
Activation_Sigmoid = _activations.Sigmoid
Activation_Linear = _activations.Linear
Loss = _losses.Loss
Loss_CategoricalCrossentropy = _losses.CategoricalCrossentropy
Loss_BinaryCrossentropy = _losses.BinaryCrossentropy
Loss_MeanSquaredError = _losses.MeanSquaredError
Loss_MeanAbsoluteError = _losses.MeanAbsoluteError
Activation_Softmax_Loss_CategoricalCrossentropy = _losses.SoftmaxCategoricalCrossentropy
Optimizer_SGD = _optimizers.SGD
Optimizer_Adagrad = _optimizers.Adagrad
Optimizer_RMSprop = _optimizers.RMSprop
Optimizer_Adam = _optimizers.Adam
Accuracy = _metrics.Accuracy
Accuracy_Categorical = _metrics.Categorical
Accuracy_Regression = _metrics.Regression
Model = _model.Model

__all__ = [
    "Accuracy",
    "Accuracy_Categorical",
    "Accuracy_Regression",
    "Activation_Linear",
    "Activation_ReLU",
    "Activation_Sigmoid",
    "Activation_Softmax",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Layer_Dense",
    "Layer_Dropout",
    "Layer_Input",
    "Loss",
    "Loss_BinaryCrossentropy",
    "Loss_CategoricalCrossentropy",
    "Loss_MeanAbsoluteError",
    "Loss_MeanSquaredError",
    "Model",
    "Optimizer_Adagrad",
    "Optimizer_Adam",
    "Optimizer_RMSprop",
    "Optimizer_SGD",
]
