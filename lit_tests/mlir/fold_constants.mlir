// RUN: nnef-opt %s --split-input-file -p fold-constants | FileCheck %s
// RUN: nnef-opt %s --split-input-file -p 'fold-constants{max-elements=4}' | FileCheck %s --check-prefix=LIMIT
// fold-constants on MLIR input, one case per graph: what depends on known values only
// becomes a new weight (rank 0: a constant); what depends on an input, and results
// larger than max-elements, stay.

nnef.graph @known_add inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 3]}> : tensor<1x3xf32>
  %a = nnef.constant <{shape = [1, 3], value = [1.000000e+00, 2.000000e+00, 3.000000e+00]}> : tensor<1x3xf32>
  %b = nnef.constant <{shape = [1, 3], value = [1.000000e+01]}> : tensor<1x3xf32>
  %s = nnef.add %a, %b : (tensor<1x3xf32>, tensor<1x3xf32>) -> tensor<1x3xf32>
  %y = nnef.mul %x, %s : (tensor<1x3xf32>, tensor<1x3xf32>) -> tensor<1x3xf32>
  nnef.return %y : tensor<1x3xf32>
}

// CHECK-LABEL: nnef.graph @known_add
// CHECK-NOT:   nnef.add
// CHECK:       %s = nnef.variable <{shape = [1, 3], label = "s"}>
// CHECK:       %y = nnef.mul %x, %s
// LIMIT-LABEL: nnef.graph @known_add
// LIMIT:       %s = nnef.variable

// -----

nnef.graph @input_stays inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 3]}> : tensor<1x3xf32>
  %a = nnef.constant <{shape = [1, 3], value = [1.000000e+00]}> : tensor<1x3xf32>
  %y = nnef.add %x, %a : (tensor<1x3xf32>, tensor<1x3xf32>) -> tensor<1x3xf32>
  nnef.return %y : tensor<1x3xf32>
}

// CHECK-LABEL: nnef.graph @input_stays
// CHECK:       %y = nnef.add %x, %a

// -----

nnef.graph @scalar_chain inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [1, 3]}> : tensor<1x3xf32>
  %c = nnef.constant <{shape = [], value = [4.000000e+00]}> : tensor<f32>
  %r = nnef.sqrt %c : (tensor<f32>) -> tensor<f32>
  %y = nnef.mul %x, %r : (tensor<1x3xf32>, tensor<f32>) -> tensor<1x3xf32>
  nnef.return %y : tensor<1x3xf32>
}

// CHECK-LABEL: nnef.graph @scalar_chain
// CHECK-NOT:   nnef.sqrt
// CHECK:       value = [2.000000e+00]
// CHECK:       nnef.mul %x

// -----

nnef.graph @large_stays inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [2, 4]}> : tensor<2x4xf32>
  %a = nnef.constant <{shape = [2, 4], value = [1.000000e+00]}> : tensor<2x4xf32>
  %e = nnef.exp %a : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %y = nnef.add %x, %e : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  nnef.return %y : tensor<2x4xf32>
}

// CHECK-LABEL: nnef.graph @large_stays
// CHECK-NOT:   nnef.exp
// CHECK:       %e = nnef.constant <{shape = [2, 4], value = [2.7182819843292236]}>
// LIMIT-LABEL: nnef.graph @large_stays
// LIMIT:       %e = nnef.exp %a
// LIMIT:       %y = nnef.add %x, %e
