// RUN: nnef-opt %s | FileCheck %s
// RUN: nnef-opt %s > %t.mlir && nnef-opt %t.mlir | diff %t.mlir -
// RUN: nnef-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC
// RUN: nnef-opt %s --mlir-print-op-generic | nnef-opt - | diff %t.mlir -
// RUN: nnef-opt %S/Inputs/generic.mlir | FileCheck %s --check-prefix=FROM-GENERIC
// RUN: nnef-opt %s --emit nnef | FileCheck %s --check-prefix=NNEF
// MLIR written by hand in the nnef dialect's custom format: it reads back, prints in the
// same form (its own or the generic one), and writes NNEF. Properties may carry their
// types (`1 : i64`) or not; an operation in the generic form may stand among them. A
// graph.quant entry is the encoding of its tensor's type (%b's).

builtin.module attributes {nnef.version = [1 : i64, 0 : i64], nnef.extensions = ["tract_registry tract_core", "tract_symbol N"]} {
  nnef.fragment @twice "fragment twice( x: tensor<scalar> ) -> ( y: tensor<scalar> )\0A{\0A    y = 2.0 * x;\0A}"
  nnef.graph @net inputs ["x", "n"] outputs ["y", "s1", "s2", "z", "r", "t"] {
    %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32> loc("net.nnef":3:5)
    // a symbolic dimension: `?` in the type, its expression in nnef.dims
    %n = nnef.tract_core_external <{shape = [{dim = "N"}, 3], datum_type = "f32"}> {nnef.dims = {n = [{dim = "N"}, 3 : i64]}} : tensor<?x3xf32>
    %w = nnef.constant <{shape = [2, 2, 1, 1], value = [0.5]}> : tensor<2x2x1x1xf32>
    %b = nnef.variable <{shape = [1, 2], label = "bias"}> {nnef.data = dense_resource<bias.0> : tensor<1x2xf32>, nnef.item = [0 : i64, 32 : i64]} : tensor<1x2xf32, #nnef.quant<"zero_point_linear_quantize", {zero_point = 0 : i64, scale = 5.000000e-01 : f64, bits = 8 : i64, signed = true, symmetric = true}>> loc("net.nnef":5:5)
    %c1 = nnef.conv %x, %w, %b <{border = "constant", padding = [], stride = [1 : i64, 1 : i64],
                                   dilation = [], groups = 1}> : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>, tensor<1x2xf32, #nnef.quant<"zero_point_linear_quantize", {zero_point = 0 : i64, scale = 5.000000e-01 : f64, bits = 8 : i64, signed = true, symmetric = true}>>) -> tensor<1x2x4x4xf32> loc("net.nnef":6:5)
    %c2 = nnef.conv %x, %w <{border = "constant", padding = [], stride = [], dilation = [], groups = 1}> {nnef.explicit = ["filter", "input"]} : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x4x4xf32>
    %a = "nnef.add"(%c1, %c2) : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %y = nnef.selu %a <{alpha = 1.6732632423543772, lambda_ = 1.0507009873554805}> : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %s1, %s2 = nnef.split %y <{axis = 1, ratios = [1, 1]}> : (tensor<1x2x4x4xf32>) -> (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>)
    %z = nnef.concat [%s2, %s1] <{axis = 1}> : (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32>
    %size = nnef.constant <{shape = [4], value = [1, 2, 8, 8]}> : tensor<4xi32>
    %r = nnef.tract_core_resize %x sizes(%size : tensor<4xi32>) <{coord_transformer = "asymmetric", interpolator = "nearest", nearest_mode = "floor"}> : tensor<1x2x4x4xf32> -> tensor<1x2x8x8xf32>
    %t = nnef.call @twice(%n) <{operand_names = ["x"], args = {}}> : (tensor<?x3xf32>) -> tensor<?x3xf32>
    nnef.return %y, %s1, %s2, %z, %r, %t : tensor<1x2x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x8x8xf32>, tensor<?x3xf32>
  }
}

// CHECK:      nnef.fragment @twice "fragment twice(
// CHECK-NEXT: nnef.graph @net inputs ["x", "n"] outputs ["y", "s1", "s2", "z", "r", "t"] {
// CHECK-NEXT:   %x = nnef.external <{shape = [1, 2, 4, 4]}> : tensor<1x2x4x4xf32> loc("net.nnef":3:5)
// CHECK-NEXT:   %n = nnef.tract_core_external <{shape = [{dim = "N"}, 3], datum_type = "f32"}> {nnef.dims = {n = [{dim = "N"}, 3 : i64]}} : tensor<?x3xf32> loc(unknown)
// CHECK-NEXT:   %w = nnef.constant <{shape = [2, 2, 1, 1], value = [5.000000e-01]}> : tensor<2x2x1x1xf32>
// CHECK-NEXT:   %b = nnef.variable <{shape = [1, 2], label = "bias"}> {nnef.data = dense_resource<bias.0> : tensor<1x2xf32>, nnef.item = [0 : i64, 32 : i64]} : tensor<1x2xf32, #nnef.quant<"zero_point_linear_quantize", {zero_point = 0 : i64, scale = 5.000000e-01 : f64, bits = 8 : i64, signed = true, symmetric = true}>> loc("net.nnef":5:5)
// CHECK-NEXT:   %c1 = nnef.conv %x, %w, %b <{border = "constant", padding = [], stride = [1, 1], dilation = [], groups = 1}> : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>, tensor<1x2xf32, #nnef.quant<"zero_point_linear_quantize", {zero_point = 0 : i64, scale = 5.000000e-01 : f64, bits = 8 : i64, signed = true, symmetric = true}>>) -> tensor<1x2x4x4xf32> loc("net.nnef":6:5)
// CHECK-NEXT:   %c2 = nnef.conv %x, %w <{border = "constant", padding = [], stride = [], dilation = [], groups = 1}> {nnef.explicit = ["filter", "input"]} : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:   %a = nnef.add %c1, %c2 : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:   %y = nnef.selu %a <{alpha = 1.6732632423543772, lambda_ = 1.0507009873554805}> : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:   %s1, %s2 = nnef.split %y <{axis = 1, ratios = [1, 1]}> : (tensor<1x2x4x4xf32>) -> (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>)
// CHECK-NEXT:   %z = nnef.concat [%s2, %s1] <{axis = 1}> : (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:   %size = nnef.constant <{shape = [4], value = [1, 2, 8, 8]}> : tensor<4xi32>
// CHECK-NEXT:   %r = nnef.tract_core_resize %x sizes(%size : tensor<4xi32>) <{coord_transformer = "asymmetric", interpolator = "nearest", nearest_mode = "floor"}> : tensor<1x2x4x4xf32> -> tensor<1x2x8x8xf32>
// CHECK-NEXT:   %t = nnef.call @twice(%n) <{operand_names = ["x"], args = {}}> : (tensor<?x3xf32>) -> tensor<?x3xf32>
// CHECK-NEXT:   nnef.return %y, %s1, %s2, %z, %r, %t : tensor<1x2x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x8x8xf32>, tensor<?x3xf32>
// CHECK-NEXT: }

// GENERIC:      "builtin.module"() ({
// GENERIC:      "nnef.graph"() <{sym_name = "net", inputs = ["x", "n"], outputs = ["y", "s1", "s2", "z", "r", "t"]}> ({
// GENERIC:      %c1 = "nnef.conv"(%x, %w, %b) <{border = "constant", padding = [], stride = [1 : i64, 1 : i64], dilation = [], groups = 1 : i64}>
// GENERIC:      %y = "nnef.selu"(%a) <{alpha = 1.6732632423543772 : f64, lambda_ = 1.0507009873554805 : f64}>
// GENERIC:      %r = "nnef.tract_core_resize"(%x, %size) <{coord_transformer = "asymmetric", interpolator = "nearest", nearest_mode = "floor", operandSegmentSizes = array<i32: 1, 0, 1>}>
// GENERIC:      %t = "nnef.call"(%n) <{callee = "twice", operand_names = ["x"], args = {}}>
// GENERIC:      "nnef.return"(%y, %s1, %s2, %z, %r, %t)

// FROM-GENERIC:      nnef.graph @G inputs ["x"] outputs ["y", "m"] {
// FROM-GENERIC-NEXT:   %x = nnef.external <{shape = [2, 3]}> : tensor<2x3xf32> loc("g.nnef":4:5)
// FROM-GENERIC-NEXT:   %y = nnef.transpose %x <{axes = [1, 0]}> : (tensor<2x3xf32>) -> tensor<3x2xf32> loc("g.nnef":5:5)
// FROM-GENERIC-NEXT:   %0 = nnef.constant <{shape = [], value = [0.000000e+00]}> : tensor<f32> loc(unknown)
// FROM-GENERIC-NEXT:   %m = nnef.tract_core_resize %x scales(%0 : tensor<f32>) <{interpolator = "linear"}> : tensor<2x3xf32> -> tensor<2x3xf32> loc("g.nnef":6:5)
// FROM-GENERIC-NEXT:   nnef.return %y, %m : tensor<3x2xf32>, tensor<2x3xf32> loc(unknown)

// NNEF:      extension tract_registry tract_core;
// NNEF:      fragment twice( x: tensor<scalar> ) -> ( y: tensor<scalar> )
// NNEF:      graph net( x, n ) -> ( y, s1, s2, z, r, t )
// NNEF:      y = selu(a, alpha = 1.6732632423543772, lambda = 1.0507009873554805);
// NNEF:      [s1, s2] = split(y, axis = 1, ratios = [1, 1]);
// NNEF:      t = twice(n);
