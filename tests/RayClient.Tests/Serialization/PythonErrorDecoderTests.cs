using System.Text.Json;
using RayClient.Serialization;

namespace RayClient.Tests.Serialization;

public class PythonErrorDecoderTests
{
    private const string Traceback =
        "Traceback (most recent call last):\n" +
        "  File \"/tmp/job/tasks.py\", line 7, in divide\n" +
        "    return a / b\n" +
        "ZeroDivisionError: division by zero\n";

    private const string Header = "ray::divide() (pid=4242, ip=10.0.0.7)\n";

    [Fact]
    public void Decode_DualClassWithBuildState_GivesTypeCauseTracebackAndFunction()
    {
        var error = Decode(GoldenErrorPickles.DualOld);

        Assert.Equal("ray.exceptions.RayTaskError(ZeroDivisionError)", error.TypeName);
        Assert.Equal(Header + Traceback, error.Message);
        Assert.Equal(Traceback, error.Traceback);
        Assert.Equal("tasks.divide", error.FunctionName);
        Assert.Equal(new PythonError("builtins.ZeroDivisionError", "division by zero", null, null, null), error.Cause);
    }

    [Fact]
    public void Decode_DualClassWithoutBuild_TakesCauseFromReduceAndTextFromTheClass()
    {
        var error = Decode(GoldenErrorPickles.DualNew);

        Assert.Equal("ray.exceptions.RayTaskError(ZeroDivisionError)", error.TypeName);
        Assert.Equal(Header + Traceback, error.Message);
        Assert.Equal(Header + Traceback, error.Traceback);
        Assert.Null(error.FunctionName);
        Assert.Equal("builtins.ZeroDivisionError", error.Cause?.TypeName);
        Assert.Equal("division by zero", error.Cause?.Message);
    }

    [Fact]
    public void Decode_DualClassOfUserClassByValue_CauseKeepsItsModuleAndArgs()
    {
        var error = Decode(GoldenErrorPickles.DualUserClassByValue);

        Assert.Equal("ray.exceptions.RayTaskError(MyError)", error.TypeName);
        Assert.Equal("__main__.MyError", error.Cause?.TypeName);
        Assert.Equal("('bad input', 3)", error.Cause?.Message);
        Assert.Contains("ZeroDivisionError: division by zero", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_PlainRayTaskError_UsesTheSixArgs()
    {
        var error = Decode(GoldenErrorPickles.PlainTaskError);

        Assert.Equal("ray.exceptions.RayTaskError", error.TypeName);
        Assert.Equal(Traceback, error.Message);
        Assert.Equal(Traceback, error.Traceback);
        Assert.Equal("tasks.divide", error.FunctionName);
        Assert.Equal(new PythonError("builtins.ValueError", "boom", null, null, null), error.Cause);
    }

    [Fact]
    public void Decode_GetTimeoutError_GivesItsMessage()
    {
        var error = Decode(GoldenErrorPickles.GetTimeout);

        Assert.Equal(new PythonError("ray.exceptions.GetTimeoutError", "Get timed out: some object(s) not ready.", null, null, null), error);
    }

    [Fact]
    public void Decode_ActorDiedErrorWithState_UsesErrorMsg()
    {
        var error = Decode(GoldenErrorPickles.ActorDied);

        Assert.Equal("ray.exceptions.ActorDiedError", error.TypeName);
        Assert.StartsWith("The actor died unexpectedly before finishing this task.", error.Message, StringComparison.Ordinal);
        Assert.Null(error.Cause);
    }

    [Fact]
    public void Decode_OsErrorSubclass_FormatsLikePython()
    {
        var error = Decode(GoldenErrorPickles.FileNotFound);

        Assert.Equal("builtins.FileNotFoundError", error.TypeName);
        Assert.Equal("[Errno 2] No such file or directory: 'data.csv'", error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("68656c6c6f")]
    [InlineData("8005")]
    [InlineData("80059563070000000000008c1b7261792e")]
    public void Decode_NotAPickle_GivesUnknownWithHexPreview(string hex)
    {
        var error = PythonErrorDecoder.Decode(Convert.FromHexString(hex));

        Assert.Equal("unknown", error.TypeName);
        Assert.Contains($"{hex.Length / 2} bytes: {hex[..Math.Min(hex.Length, 128)]}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_EveryTruncationOfAGolden_NeverThrows()
    {
        var data = Convert.FromHexString(GoldenErrorPickles.DualOld);
        for (var length = 0; length < data.Length; length += 7)
        {
            Assert.NotNull(PythonErrorDecoder.Decode(data.AsMemory(0, length)));
        }
    }

    [Fact]
    public void TryDecodeException_RayErrorValue_ReturnsTrue()
    {
        var value = PickleReader.Read(Convert.FromHexString(GoldenErrorPickles.PlainTaskError));

        Assert.True(PythonErrorDecoder.TryDecodeException(value, out var error));
        Assert.Equal("ray.exceptions.RayTaskError", error.TypeName);
        Assert.Equal("boom", error.Cause?.Message);
    }

    [Fact]
    public void TryDecodeException_DualClassValue_FindsTheTextInsideTheClass()
    {
        var value = PickleReader.Read(Convert.FromHexString(GoldenErrorPickles.DualNew));

        Assert.True(PythonErrorDecoder.TryDecodeException(value, out var error));
        Assert.Equal(Header + Traceback, error.Message);
    }

    [Fact]
    public void TryDecodeException_PlainValuesAndUserExceptions_ReturnFalse()
    {
        var valueError = PickleReader.Read(Convert.FromHexString(GoldenErrorPickles.FileNotFound));

        Assert.False(PythonErrorDecoder.TryDecodeException(valueError, out _));
        Assert.False(PythonErrorDecoder.TryDecodeException(42, out _));
        Assert.False(PythonErrorDecoder.TryDecodeException(null, out _));
        Assert.False(PythonErrorDecoder.TryDecodeException(new PyObject(new PyGlobal("mymod", "Point"), PyTuple.Empty, true), out _));
    }

    /// <summary>
    /// Error shapes built by python3's own pickle (no cloudpickle needed): built-in and custom
    /// exceptions, BUILD states, a Ray-style dual class emitted through <c>reducer_override</c>
    /// with cloudpickle's helper names, and code-object-like REDUCE chains.
    /// </summary>
    [Fact]
    public void Decode_ExceptionsPickledByPython3_GivesTypeMessageAndCause()
    {
        var output = PythonRunner.Run(
            """
            exc = _module("ray.exceptions")
            cpm = _module("ray.cloudpickle.cloudpickle")
            raylet = _module("ray._raylet")

            def _helper(name):
                def f(*args):
                    raise RuntimeError("never called")
                f.__name__ = f.__qualname__ = name
                f.__module__ = "ray.cloudpickle.cloudpickle"
                setattr(cpm, name, f)
                return f
            for _n in ("_builtin_type", "_make_function", "_make_skeleton_class", "_class_setstate", "_make_cell"):
                _helper(_n)

            class RayError(Exception):
                pass
            class RayTaskError(RayError):
                pass
            class TaskCancelledError(RayError):
                def __init__(self, task_id=None):
                    self.task_id = task_id
            class RayActorError(RayError):
                def __init__(self, cause=None):
                    self.error_msg = "The actor died because of an error raised in its creation task"
            class TaskID:
                def __init__(self, b): self.b = b
                def __reduce__(self): return (TaskID, (self.b,))
            for _c in (RayError, RayTaskError, TaskCancelledError, RayActorError):
                _c.__module__ = "ray.exceptions"
                setattr(exc, _c.__name__, _c)
            TaskID.__module__ = "ray._raylet"
            raylet.TaskID = TaskID

            class BuiltinTypeToken:
                # Stands for the result of _builtin_type('CodeType'), used as a callable.
                def __call__(self, *a): pass
                def __reduce__(self): return (cpm._builtin_type, ("CodeType",))
            class CodeLike:
                def __reduce__(self):
                    return (BuiltinTypeToken(), (2, 0, 0, 2, 2, 19, b"\x97\x00|\x01", (None,), ("cause",), "<string>", "__init__"))
            class FunctionLike:
                def __init__(self, text): self.text = text
                def __call__(self, *a): pass
                def __reduce__(self):
                    return (cpm._make_function, (CodeLike(), {"__name__": "ray.exceptions"}, "__str__", None, (cpm._make_cell(self.text) if False else CellLike(self.text),)))
            class CellLike:
                def __init__(self, v): self.v = v
                def __reduce__(self): return (cpm._make_cell, (self.v,))

            TB = "Traceback (most recent call last):\n  File \"t.py\", line 3, in f\nValueError: bad\n"
            HEADER = "ray::f() (pid=1, ip=1.2.3.4)\n"
            Dual = type("RayTaskError(ValueError)", (RayTaskError, ValueError), {})
            Dual.__module__ = "ray.exceptions"

            class CloudLikePickler(pickle.Pickler):
                def reducer_override(self, obj):
                    if obj is Dual:
                        return (cpm._make_skeleton_class,
                                (type, "RayTaskError(ValueError)", (RayTaskError, ValueError), {}, "0123abcd", None),
                                ({"__str__": FunctionLike(HEADER + TB), "__doc__": None}, {}),
                                None, None, cpm._class_setstate)
                    if type(obj) is Dual:
                        return (Dual, (obj.cause,), {"cause": obj.cause, "traceback_str": TB, "function_name": "mod.f", "pid": 1})
                    return NotImplemented

            def cloud_dumps(v):
                f = io.BytesIO()
                CloudLikePickler(f, protocol=5).dump(v)
                return f.getvalue()

            dual = Dual.__new__(Dual)
            dual.cause = ValueError("bad")

            stateful = MyError("with state")
            stateful.detail = {"code": CodeLike(), "note": "kept as state"}

            cases = {
                "ValueError": pickle.dumps(ValueError("boom"), 5),
                "ValueErrorP2": pickle.dumps(ValueError("boom"), 2),
                "KeyError": pickle.dumps(KeyError("k"), 5),
                "NoArgs": pickle.dumps(RuntimeError(), 5),
                "TwoArgs": pickle.dumps(RuntimeError("a", 1), 5),
                "Custom": pickle.dumps(MyError("custom message"), 5),
                "CustomWithCodeState": pickle.dumps(stateful, 5),
                "Dual": cloud_dumps(dual),
                "Cancelled": pickle.dumps(TaskCancelledError(TaskID(b"\xab" * 4)), 5),
                "ActorError": pickle.dumps(RayActorError(None), 5),
                "Timeout": pickle.dumps(TimeoutError("late"), 4),
            }
            print(json.dumps({k: v.hex() for k, v in cases.items()}))
            """);
        var pickles = JsonSerializer.Deserialize<Dictionary<string, string>>(output)!
            .ToDictionary(p => p.Key, p => PythonErrorDecoder.Decode(Convert.FromHexString(p.Value)));

        Assert.Equal(new PythonError("builtins.ValueError", "boom", null, null, null), pickles["ValueError"]);
        Assert.Equal(new PythonError("builtins.ValueError", "boom", null, null, null), pickles["ValueErrorP2"]);
        Assert.Equal("'k'", pickles["KeyError"].Message);
        Assert.Equal(new PythonError("builtins.RuntimeError", "", null, null, null), pickles["NoArgs"]);
        Assert.Equal("('a', 1)", pickles["TwoArgs"].Message);
        Assert.Equal(new PythonError("mymod.MyError", "custom message", null, null, null), pickles["Custom"]);
        Assert.Equal(new PythonError("mymod.MyError", "with state", null, null, null), pickles["CustomWithCodeState"]);
        Assert.Equal("ray.exceptions.RayTaskError(ValueError)", pickles["Dual"].TypeName);
        Assert.Equal("ray::f() (pid=1, ip=1.2.3.4)\nTraceback (most recent call last):\n  File \"t.py\", line 3, in f\nValueError: bad\n", pickles["Dual"].Message);
        Assert.Equal("mod.f", pickles["Dual"].FunctionName);
        Assert.Equal(new PythonError("builtins.ValueError", "bad", null, null, null), pickles["Dual"].Cause);
        Assert.Equal("ray.exceptions.TaskCancelledError", pickles["Cancelled"].TypeName);
        Assert.Equal("Task: abababab was cancelled", pickles["Cancelled"].Message);
        Assert.Equal("The actor died because of an error raised in its creation task", pickles["ActorError"].Message);
        Assert.Equal(new PythonError("builtins.TimeoutError", "late", null, null, null), pickles["Timeout"]);
    }

    private static PythonError Decode(string hex) => PythonErrorDecoder.Decode(Convert.FromHexString(hex));
}
