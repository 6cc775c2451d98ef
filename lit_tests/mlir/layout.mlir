// RUN: nnef-opt %s --split-input-file -p layout | FileCheck %s
// RUN: nnef-opt %s --split-input-file -p 'layout,layout{to=nchw}' | FileCheck %s --check-prefix=BACK
// layout on MLIR input, one case per graph: convolutions and spatial pooling become
// channel-last with one transpose in and one out, which cancel through element-wise
// operations; a rank-2 graph and a pooling window over channels stay as they are.
// `layout{to=nchw}` gives the channel-first operations back, without a transpose.

nnef.graph @conv_chain inputs ["a"] outputs ["y"] {
  %a = nnef.external <{shape = [1, 4, 8, 8]}> : tensor<1x4x8x8xf32>
  %w = nnef.constant <{shape = [4, 4, 3, 3], value = [5.000000e-01]}> : tensor<4x4x3x3xf32>
  %c1 = nnef.conv %a, %w <{border = "constant", padding = [[1, 1], [1, 1]], stride = [], dilation = [], groups = 1}> : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x8x8xf32>
  %r = nnef.relu %c1 : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %y = nnef.conv %r, %w <{border = "constant", padding = [[1, 1], [1, 1]], stride = [], dilation = [], groups = 1}> : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x8x8xf32>
  nnef.return %y : tensor<1x4x8x8xf32>
}

// CHECK-LABEL: nnef.graph @conv_chain
// CHECK:       nnef.transpose %a <{axes = [0, 2, 3, 1]}> {{.*}}-> tensor<1x8x8x4xf32>
// CHECK-NEXT:  %c1 = nnef.conv
// CHECK-SAME:  layout = "nhwc"}>
// CHECK-NEXT:  %r = nnef.relu %c1 {{.*}}-> tensor<1x8x8x4xf32>
// CHECK-NEXT:  %y_nhwc = nnef.conv %r
// CHECK-SAME:  layout = "nhwc"}>
// CHECK-NEXT:  %y = nnef.transpose %y_nhwc <{axes = [0, 3, 1, 2]}> {{.*}}-> tensor<1x4x8x8xf32>
// CHECK-NEXT:  nnef.return %y
// BACK-LABEL:  nnef.graph @conv_chain
// BACK-NOT:    {{layout = "nhwc"|nnef.transpose}}
// BACK:        %c1 = nnef.conv %a, %w {{.*}}-> tensor<1x4x8x8xf32>
// BACK-NEXT:   %r = nnef.relu %c1
// BACK-NEXT:   %y = nnef.conv %r, %w {{.*}}-> tensor<1x4x8x8xf32>
// BACK-NEXT:   nnef.return %y

// -----

nnef.graph @per_channel_add inputs ["a"] outputs ["y"] {
  %a = nnef.external <{shape = [1, 4, 8, 8]}> : tensor<1x4x8x8xf32>
  %w = nnef.constant <{shape = [4, 4, 1, 1], value = [5.000000e-01]}> : tensor<4x4x1x1xf32>
  %k = nnef.constant <{shape = [1, 4], value = [1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]}> : tensor<1x4xf32>
  %c = nnef.conv %a, %w <{border = "constant", padding = [], stride = [], dilation = [], groups = 1}> : (tensor<1x4x8x8xf32>, tensor<4x4x1x1xf32>) -> tensor<1x4x8x8xf32>
  %s = nnef.add %c, %k : (tensor<1x4x8x8xf32>, tensor<1x4xf32>) -> tensor<1x4x8x8xf32>
  %y = nnef.max_pool %s <{size = [1, 1, 2, 2], border = "constant", padding = [], stride = [1, 1, 2, 2], dilation = []}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
  nnef.return %y : tensor<1x4x4x4xf32>
}

// The per-channel constant is permuted: no transpose between conv and pool.
// CHECK-LABEL: nnef.graph @per_channel_add
// CHECK:       %k_nhwc = nnef.constant {{.*}}tensor<1x1x1x4xf32>
// CHECK:       %c = nnef.conv
// CHECK-NEXT:  %s = nnef.add %c, %k_nhwc
// CHECK-NEXT:  %y_nhwc = nnef.max_pool %s
// CHECK-SAME:  layout = "nhwc"}>
// CHECK-NEXT:  %y = nnef.transpose %y_nhwc

// -----

nnef.graph @rank_two_stays inputs ["c"] outputs ["y"] {
  %c = nnef.external <{shape = [2, 4]}> : tensor<2x4xf32>
  %w = nnef.constant <{shape = [3, 4], value = [2.500000e-01]}> : tensor<3x4xf32>
  %0 = nnef.constant <{shape = [], value = [0.000000e+00]}> : tensor<f32>
  %y = nnef.linear %c, %w, %0 : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<f32>) -> tensor<2x3xf32>
  nnef.return %y : tensor<2x3xf32>
}

// CHECK-LABEL: nnef.graph @rank_two_stays
// CHECK-NOT:   {{layout = "nhwc"|nnef.transpose}}
// CHECK:       %y = nnef.linear %c, %w
// CHECK-NOT:   {{layout = "nhwc"|nnef.transpose}}
// CHECK:       nnef.return

// -----

nnef.graph @channel_window_stays inputs ["a"] outputs ["y"] {
  %a = nnef.external <{shape = [1, 4, 8, 8]}> : tensor<1x4x8x8xf32>
  %y = nnef.avg_pool %a <{size = [1, 2, 1, 1], border = "constant", padding = [], stride = [], dilation = []}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  nnef.return %y : tensor<1x4x8x8xf32>
}

// A window over channels has no channel-last form.
// CHECK-LABEL: nnef.graph @channel_window_stays
// CHECK-NOT:   {{layout = "nhwc"|nnef.transpose}}
// CHECK:       %y = nnef.avg_pool %a <{size = [1, 2, 1, 1]
// CHECK-NOT:   {{layout = "nhwc"|nnef.transpose}}
// CHECK:       nnef.return
