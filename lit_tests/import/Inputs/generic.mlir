"builtin.module"() <{}> ({
  "nnef.graph"() <{sym_name = "G", inputs = ["x"], outputs = ["y", "m"]}> ({
    %x = "nnef.external"() <{shape = [2 : i64, 3 : i64]}> : () -> tensor<2x3xf32> loc("g.nnef":4:5)
    %y = "nnef.transpose"(%x) <{axes = [1 : i64, 0 : i64]}> : (tensor<2x3xf32>) -> tensor<3x2xf32> loc("g.nnef":5:5)
    %0 = "nnef.constant"() <{shape = [], value = [0.000000e+00 : f64]}> : () -> tensor<f32>
    %m = "nnef.tract_core_resize"(%x, %0) <{interpolator = "linear", operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32> loc("g.nnef":6:5)
    "nnef.return"(%y, %m) : (tensor<3x2xf32>, tensor<2x3xf32>) -> ()
  }) : () -> ()
}) {nnef.extensions = ["tract_registry tract_core"]} : () -> ()
