// RUN: nnef-opt %s --split-input-file -p fuse | FileCheck %s
// fuse on MLIR input, one case per graph: an activation joins the conv before it, a
// batch norm folds into its weights, a zero pad moves into the window; a conv that has
// another user, values that are not per channel, and a reflecting pad stay as they are.

nnef.graph @conv_relu_fuses inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32>
  %w = nnef.constant <{shape = [3, 2, 1, 1], value = [5.000000e-01]}> : tensor<3x2x1x1xf32>
  %c = nnef.conv %x, %w <{border = "constant", padding = [], stride = [], dilation = [], groups = 1}> : (tensor<1x2x4x4xf32>, tensor<3x2x1x1xf32>) -> tensor<1x3x4x4xf32>
  %y = nnef.relu %c : (tensor<1x3x4x4xf32>) -> tensor<1x3x4x4xf32>
  nnef.return %y : tensor<1x3x4x4xf32>
}

// CHECK-LABEL: nnef.graph @conv_relu_fuses
// CHECK-NOT:   nnef.relu
// CHECK:       %y = nnef.conv_relu %x, %w

// -----

nnef.graph @shared_conv_stays inputs ["x"] outputs ["y", "c"] {
  %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32>
  %w = nnef.constant <{shape = [3, 2, 1, 1], value = [5.000000e-01]}> : tensor<3x2x1x1xf32>
  %c = nnef.conv %x, %w <{border = "constant", padding = [], stride = [], dilation = [], groups = 1}> : (tensor<1x2x4x4xf32>, tensor<3x2x1x1xf32>) -> tensor<1x3x4x4xf32>
  %y = nnef.relu %c : (tensor<1x3x4x4xf32>) -> tensor<1x3x4x4xf32>
  nnef.return %y, %c : tensor<1x3x4x4xf32>, tensor<1x3x4x4xf32>
}

// The conv is an output too: its relu stays apart.
// CHECK-LABEL: nnef.graph @shared_conv_stays
// CHECK:       %c = nnef.conv %x, %w
// CHECK-NEXT:  %y = nnef.relu %c

// -----

nnef.graph @batch_norm_folds inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32>
  %w = nnef.constant <{shape = [3, 2, 1, 1], value = [5.000000e-01]}> : tensor<3x2x1x1xf32>
  %mean = nnef.constant <{shape = [1, 3], value = [1.000000e+00, 2.000000e+00, 3.000000e+00]}> : tensor<1x3xf32>
  %var = nnef.constant <{shape = [1, 3], value = [4.000000e+00]}> : tensor<1x3xf32>
  %c = nnef.conv %x, %w <{border = "constant", padding = [], stride = [], dilation = [], groups = 1}> : (tensor<1x2x4x4xf32>, tensor<3x2x1x1xf32>) -> tensor<1x3x4x4xf32>
  %0 = nnef.constant <{shape = [], value = [0.000000e+00]}> : tensor<f32>
  %1 = nnef.constant <{shape = [], value = [1.000000e+00]}> : tensor<f32>
  %y = nnef.batch_normalization %c, %mean, %var, %0, %1 <{epsilon = 1.000000e-03}> : (tensor<1x3x4x4xf32>, tensor<1x3xf32>, tensor<1x3xf32>, tensor<f32>, tensor<f32>) -> tensor<1x3x4x4xf32>
  nnef.return %y : tensor<1x3x4x4xf32>
}

// CHECK-LABEL: nnef.graph @batch_norm_folds
// CHECK-NOT:   nnef.batch_normalization
// CHECK:       %w_fused = nnef.variable <{shape = [3, 2, 1, 1], label = "w_fused"}>
// CHECK:       %w_bias_fused = nnef.variable <{shape = [1, 3], label = "w_bias_fused"}>
// CHECK:       %y = nnef.conv %x, %w_fused, %w_bias_fused
// CHECK-NOT:   nnef.batch_normalization

// -----

nnef.graph @full_tensor_scale_stays inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32>
  %w = nnef.constant <{shape = [3, 2, 1, 1], value = [5.000000e-01]}> : tensor<3x2x1x1xf32>
  %full = nnef.constant <{shape = [1, 3, 4, 4], value = [2.000000e+00]}> : tensor<1x3x4x4xf32>
  %c = nnef.conv %x, %w <{border = "constant", padding = [], stride = [], dilation = [], groups = 1}> : (tensor<1x2x4x4xf32>, tensor<3x2x1x1xf32>) -> tensor<1x3x4x4xf32>
  %y = nnef.mul %c, %full : (tensor<1x3x4x4xf32>, tensor<1x3x4x4xf32>) -> tensor<1x3x4x4xf32>
  nnef.return %y : tensor<1x3x4x4xf32>
}

// Not one value per channel: no weights to fold it into.
// CHECK-LABEL: nnef.graph @full_tensor_scale_stays
// CHECK:       %c = nnef.conv %x, %w
// CHECK-NEXT:  %y = nnef.mul %c, %full

// -----

nnef.graph @zero_pad_moves inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32>
  %w = nnef.constant <{shape = [3, 2, 1, 1], value = [5.000000e-01]}> : tensor<3x2x1x1xf32>
  %p = nnef.pad %x <{padding = [[0, 0], [0, 0], [1, 2], [3, 0]], border = "constant", value = 0.000000e+00}> : (tensor<1x2x4x4xf32>) -> tensor<1x2x7x7xf32>
  %y = nnef.conv %p, %w <{border = "constant", padding = [[0, 0], [1, 1]], stride = [], dilation = [], groups = 1}> : (tensor<1x2x7x7xf32>, tensor<3x2x1x1xf32>) -> tensor<1x3x7x9xf32>
  nnef.return %y : tensor<1x3x7x9xf32>
}

// CHECK-LABEL: nnef.graph @zero_pad_moves
// CHECK-NOT:   nnef.pad
// CHECK:       %y = nnef.conv %x, %w <{border = "constant", padding = {{\[\[1, 2\], \[4, 1\]\]}}

// -----

nnef.graph @reflect_pad_stays inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32>
  %p = nnef.pad %x <{padding = [[0, 0], [0, 0], [1, 1], [1, 1]], border = "reflect", value = 0.000000e+00}> : (tensor<1x2x4x4xf32>) -> tensor<1x2x6x6xf32>
  %y = nnef.avg_pool %p <{size = [1, 1, 3, 3], border = "constant", padding = [[0, 0], [0, 0], [0, 0], [0, 0]], stride = [], dilation = []}> : (tensor<1x2x6x6xf32>) -> tensor<1x2x4x4xf32>
  nnef.return %y : tensor<1x2x4x4xf32>
}

// CHECK-LABEL: nnef.graph @reflect_pad_stays
// CHECK:       %p = nnef.pad %x
// CHECK-NEXT:  %y = nnef.avg_pool %p
