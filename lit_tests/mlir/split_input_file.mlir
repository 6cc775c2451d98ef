// RUN: not nnef-opt %s --split-input-file 2> %t.err | FileCheck %s
// RUN: FileCheck %s --check-prefix=ERR < %t.err
// --split-input-file: each case is read and printed alone; an error names its line in
// this file and ends its own case only.

nnef.graph @first inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [2]}> : tensor<2xf32>
  %y = nnef.relu %x : (tensor<2xf32>) -> tensor<2xf32>
  nnef.return %y : tensor<2xf32>
}

// CHECK-LABEL: nnef.graph @first
// CHECK:       nnef.relu

// -----

nnef.graph @broken inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [2]}> : tensor<2xf32>
  %y = nnef.no_such_op %x : (tensor<2xf32>) -> tensor<2xf32>
  nnef.return %y : tensor<2xf32>
}

// CHECK-NOT:   @broken
// CHECK:       // -----
// ERR:         split_input_file.mlir:19:{{[0-9]+}}: error: Operation nnef.no_such_op is not registered
// ERR-NOT:     error

// -----

nnef.graph @last inputs ["x"] outputs ["y"] {
  %x = nnef.external <{shape = [2]}> : tensor<2xf32>
  %y = nnef.exp %x : (tensor<2xf32>) -> tensor<2xf32>
  nnef.return %y : tensor<2xf32>
}

// CHECK-LABEL: nnef.graph @last
// CHECK:       nnef.exp
