# Larq Compute Engine peer of bench/infer.ts: the same double-skip binary ResNet-18 written with
# Larq (QuantConv2D with ste_sign on inputs and weights, zero padding as bnn-torch trains it, a
# per-channel scale after each binary conv, PReLU after the residual add, full-precision 1x1
# conv + BN + average-pool shortcuts), converted by LCE's converter and timed in LCE's
# interpreter with the same thread count. Random weights: this measures latency only.
#
#   <venv with larq-compute-engine, larq, tensorflow>/bin/python bench/peer/lce.py '{"threads":2,"cases":[{"width":64,"size":224,"channels":3,"classes":1000,"stem":"imagenet","batch":1,"iterations":10}]}'
import json
import sys
import time

import numpy as np
import tensorflow as tf
import larq as lq
import larq_compute_engine as lce

cfg = json.loads(sys.argv[1])


def block(x, planes, stride):
    shortcut = x
    if stride != 1 or x.shape[-1] != planes:
        shortcut = tf.keras.layers.Conv2D(planes, 1, use_bias=False)(x)
        shortcut = tf.keras.layers.BatchNormalization()(shortcut)
        if stride != 1:
            shortcut = tf.keras.layers.AveragePooling2D(stride, stride, padding='same')(shortcut)
    y = tf.keras.layers.BatchNormalization()(x)
    y = lq.layers.QuantConv2D(planes, 3, strides=stride, padding='same', pad_values=0.0, input_quantizer='ste_sign',
                              kernel_quantizer='ste_sign', kernel_constraint='weight_clip', use_bias=False)(y)
    # bnn-torch's per-output-channel weight scale: LCE folds a following BatchNorm/multiply into the bconv.
    y = tf.keras.layers.BatchNormalization()(y)
    y = tf.keras.layers.add([y, shortcut])
    return tf.keras.layers.PReLU(shared_axes=[1, 2])(y)


def network(width, size, channels, classes, stem, batch):
    inp = tf.keras.Input((size, size, channels), batch_size=batch)
    if stem == 'imagenet':
        x = tf.keras.layers.Conv2D(width, 7, strides=2, padding='same', use_bias=False)(inp)
        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.ReLU()(x)
        x = tf.keras.layers.MaxPool2D(3, 2, padding='same')(x)
    else:
        x = tf.keras.layers.Conv2D(width, 3, padding='same', use_bias=False)(inp)
        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.ReLU()(x)
    for planes, stride in [(width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)]:
        for i in range(4):
            x = block(x, planes, stride if i == 0 else 1)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, tf.keras.layers.Dense(classes)(x))


for case in cfg['cases']:
    model = network(case['width'], case['size'], case['channels'], case['classes'], case['stem'], case['batch'])
    flatbuffer = lce.convert_keras_model(model)
    interpreter = lce.tflite.python.interpreter.Interpreter(flatbuffer, num_threads=cfg['threads'])
    x = np.random.uniform(-1, 1, (case['batch'], case['size'], case['size'], case['channels'])).astype(np.float32)
    # The wrapper's predict() feeds one sample at a time (it adds a batch axis of 1); the wrapped
    # interpreter takes the whole batch, as the model was converted for.
    run = lambda: interpreter.interpreter.predict([x])  # noqa: E731
    run()
    runs = []
    for _ in range(9):
        t = time.perf_counter()
        for _ in range(case['iterations']):
            run()
        runs.append((time.perf_counter() - t) / case['iterations'])
    print(json.dumps({**case, 'seconds': min(runs), 'lce': lce.__version__, 'tensorflow': tf.__version__, 'flatbufferBytes': len(flatbuffer)}), flush=True)
