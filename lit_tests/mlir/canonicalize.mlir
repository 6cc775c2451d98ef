// RUN: nnef-opt %s --split-input-file -p canonicalize | FileCheck %s
// canonicalize on MLIR input, one case per graph: where each rewrite fires, and the
// neighbour where it must not (a broadcast, a shared value, bounds in the wrong order).

nnef.graph @copy_goes inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 4]}> : tensor<1x4xf32>
  %c = nnef.copy %x : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %y = nnef.relu %c : (tensor<1x4xf32>) -> tensor<1x4xf32>
  nnef.return %y : tensor<1x4xf32>
}

// CHECK-LABEL: nnef.graph @copy_goes
// CHECK-NOT:   nnef.copy
// CHECK:       %y = nnef.relu %x :

// -----

nnef.graph @add_zero_goes inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 4]}> : tensor<1x4xf32>
  %0 = nnef.constant <{shape = [], value = [0.000000e+00]}> : tensor<f32>
  %a = nnef.add %x, %0 : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
  %y = nnef.exp %a : (tensor<1x4xf32>) -> tensor<1x4xf32>
  nnef.return %y : tensor<1x4xf32>
}

// CHECK-LABEL: nnef.graph @add_zero_goes
// CHECK-NOT:   nnef.add
// CHECK:       %y = nnef.exp %x :

// -----

nnef.graph @add_zero_broadcast_stays inputs ["v"] outputs ["y"] {
  %v = nnef.external <{shape = [1, 4]}> : tensor<1x4xf32>
  %z = nnef.constant <{shape = [1, 4, 2, 2], value = [0.000000e+00]}> : tensor<1x4x2x2xf32>
  %y = nnef.add %v, %z : (tensor<1x4xf32>, tensor<1x4x2x2xf32>) -> tensor<1x4x2x2xf32>
  nnef.return %y : tensor<1x4x2x2xf32>
}

// A zero of a larger shape broadcasts x: not an identity.
// CHECK-LABEL: nnef.graph @add_zero_broadcast_stays
// CHECK:       %y = nnef.add %v, %z : (tensor<1x4xf32>, tensor<1x4x2x2xf32>) -> tensor<1x4x2x2xf32>

// -----

nnef.graph @transposes_cancel inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 4, 2, 3]}> : tensor<1x4x2x3xf32>
  %p = nnef.transpose %x <{axes = [0, 2, 3, 1]}> : (tensor<1x4x2x3xf32>) -> tensor<1x2x3x4xf32>
  %q = nnef.transpose %p <{axes = [0, 3, 1, 2]}> : (tensor<1x2x3x4xf32>) -> tensor<1x4x2x3xf32>
  %y = nnef.exp %q : (tensor<1x4x2x3xf32>) -> tensor<1x4x2x3xf32>
  nnef.return %y : tensor<1x4x2x3xf32>
}

// CHECK-LABEL: nnef.graph @transposes_cancel
// CHECK-NOT:   nnef.transpose
// CHECK:       %y = nnef.exp %x :

// -----

nnef.graph @transposes_shared_stay inputs ["x"] outputs ["y", "p"] {
  %x = nnef.external <{shape = [1, 4, 2, 3]}> : tensor<1x4x2x3xf32>
  %p = nnef.transpose %x <{axes = [0, 2, 3, 1]}> : (tensor<1x4x2x3xf32>) -> tensor<1x2x3x4xf32>
  %y = nnef.transpose %p <{axes = [0, 3, 1, 2]}> : (tensor<1x2x3x4xf32>) -> tensor<1x4x2x3xf32>
  nnef.return %y, %p : tensor<1x4x2x3xf32>, tensor<1x2x3x4xf32>
}

// The inner transpose is an output too: both stay.
// CHECK-LABEL: nnef.graph @transposes_shared_stay
// CHECK:       %p = nnef.transpose %x <{axes = [0, 2, 3, 1]}>
// CHECK-NEXT:  %y = nnef.transpose %p <{axes = [0, 3, 1, 2]}>
// CHECK-NEXT:  nnef.return %y, %p

// -----

nnef.graph @min_max_is_clamp inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 4]}> : tensor<1x4xf32>
  %0 = nnef.constant <{shape = [], value = [0.000000e+00]}> : tensor<f32>
  %1 = nnef.max %x, %0 : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
  %2 = nnef.constant <{shape = [], value = [6.000000e+00]}> : tensor<f32>
  %y = nnef.min %1, %2 : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
  nnef.return %y : tensor<1x4xf32>
}

// CHECK-LABEL: nnef.graph @min_max_is_clamp
// CHECK-NOT:   nnef.max
// CHECK:       %y = nnef.clamp %x, %[[LO:.*]], %[[HI:.*]] :
// CHECK-NOT:   nnef.min

// -----

nnef.graph @min_max_wrong_order_stays inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 4]}> : tensor<1x4xf32>
  %0 = nnef.constant <{shape = [], value = [6.000000e+00]}> : tensor<f32>
  %1 = nnef.max %x, %0 : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
  %2 = nnef.constant <{shape = [], value = [0.000000e+00]}> : tensor<f32>
  %y = nnef.min %1, %2 : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
  nnef.return %y : tensor<1x4xf32>
}

// max(x, 6) then min(., 0) is 0 everywhere, not clamp(x, 6, 0).
// CHECK-LABEL: nnef.graph @min_max_wrong_order_stays
// CHECK-NOT:   nnef.clamp
// CHECK:       %1 = nnef.max %x, %0
// CHECK:       %y = nnef.min %1, %2
