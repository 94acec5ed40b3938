using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace RayClient.Serialization;

/// <summary>
/// Decodes pickled Python exceptions (Ray's error blobs) from the tolerant unpickler's output,
/// following spec §6.6 and ray-versions.md §5: the class name comes from the global or from the
/// <c>_make_skeleton_class</c> call of a class pickled by value, the cause from the first call
/// argument (or the <c>BUILD</c> state), and the message is the longest string holding a Python
/// traceback if there is one, otherwise <c>str(args)</c>. Code objects and functions inside a
/// class pickled by value are just data to it. The shapes are those of
/// ray:python/ray/exceptions.py (<c>RayTaskError.as_instanceof_cause</c>) pickled by Ray's vendored
/// cloudpickle (ray:python/ray/cloudpickle/cloudpickle.py, <c>_dynamic_class_reduce</c>).
/// </summary>
internal static class PythonErrorDecoder
{
    private const string TracebackMarker = "Traceback (most recent call last)";
    private const string RayExceptions = "ray.exceptions";
    private const int MaxCauseDepth = 8;

    /// <summary>Decodes an error pickle. Never throws: unreadable bytes give a <see cref="PythonError"/> of type <c>unknown</c>.</summary>
    public static PythonError Decode(ReadOnlyMemory<byte> pickle)
    {
        object? value;
        string? longestTraceback;
        try
        {
            value = PickleReader.ReadTrackingTracebacks(pickle.Span, out longestTraceback);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return Unreadable(pickle.Span, ex.Message);
        }

        try
        {
            return value switch
            {
                PyObject obj => FromObject(obj, longestTraceback, 0),
                string text => new PythonError("unknown", text, longestTraceback, null, null),
                _ => new PythonError("unknown", $"The error is a Python {PyTypeName.Of(value)}, not an exception: {PyRepr.Format(value, 500)}", longestTraceback, null, null),
            };
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return Unreadable(pickle.Span, ex.Message);
        }
    }

    /// <summary>
    /// True when an unpickled value is a Ray error object (a class of <c>ray.exceptions</c>, or a
    /// class pickled by value that derives from one, such as <c>RayTaskError(ValueError)</c>),
    /// which Ray raises instead of returning. Other exceptions returned by a task are plain values.
    /// </summary>
    public static bool TryDecodeException(object? unpickledValue, [NotNullWhen(true)] out PythonError? error)
    {
        error = null;
        if (unpickledValue is not PyObject obj || !IsRayError(ClassOf(obj)))
        {
            return false;
        }

        error = FromObject(obj, FindLongestTraceback(obj), 0);
        return true;
    }

    // ------------------------------------------------------------------------------------------

    private static PythonError FromObject(PyObject obj, string? longestTraceback, int depth)
    {
        var cls = ClassOf(obj);
        var typeName = cls.Module.Length == 0 ? cls.Name : $"{cls.Module}.{cls.Name}";
        var state = StateDict(obj);
        var args = obj.Args;
        var isDual = cls.ByValue && cls.Name.StartsWith("RayTaskError", StringComparison.Ordinal);
        var isPlainTaskError = !cls.ByValue && cls.Name == "RayTaskError";

        object? causeObject = isDual && args.Count > 0 ? args[0]
            : isPlainTaskError && args.Count > 2 ? args[2]
            : null;
        causeObject ??= Get(state, "cause");
        var cause = causeObject is PyObject causeObj && depth < MaxCauseDepth && !ReferenceEquals(causeObj, obj)
            ? FromObject(causeObj, null, depth + 1)
            : null;

        var functionName = (isPlainTaskError && args.Count > 0 ? args[0] as string : null) ?? Get(state, "function_name") as string;
        var traceback = Get(state, "traceback_str") as string ?? (isPlainTaskError && args.Count > 1 ? args[1] as string : null);

        string message;
        if (isDual || isPlainTaskError)
        {
            traceback ??= longestTraceback;
            message = longestTraceback ?? traceback ?? cause?.Message ?? StrOfArgs(cls, args);
        }
        else
        {
            // Ray's own classes mostly override __str__ without using args: known texts first.
            // A plain message argument (how the embedded server builds Ray errors) beats Ray's generic text.
            message = StateMessage(cls, state) ?? longestTraceback ?? (args is [string] ? null : RayMessage(cls, state)) ?? StrOfArgs(cls, args);

            traceback ??= longestTraceback;
        }

        return new PythonError(typeName, message, traceback, cause, functionName);
    }

    private static bool IsRayError(ClassInfo cls) =>
        cls.Module == RayExceptions || cls.Bases.Exists(b => b.Module == RayExceptions);

    /// <summary>The class of an exception object: a global, or a class pickled by value with cloudpickle.</summary>
    private static ClassInfo ClassOf(PyObject obj)
    {
        if (obj.Class is { } global)
        {
            return new ClassInfo(global.Module, global.Name, false, []);
        }

        if (obj.Callable is PyObject { Callable: PyGlobal { Name: "_make_skeleton_class" } } skeleton && skeleton.Args.Count >= 3)
        {
            // _make_skeleton_class(type_constructor, name, bases, type_kwargs, class_tracker_id, extra)
            var name = skeleton.Args[1] as string ?? "?";
            var bases = new List<PyGlobal>();
            if (skeleton.Args[2] is PyTuple baseTuple)
            {
                foreach (var item in baseTuple)
                {
                    if (item is PyGlobal g)
                    {
                        bases.Add(g);
                    }
                }
            }

            // __module__ is only in the class dict when it differs from the bases' (cloudpickle
            // drops inherited attributes), so fall back to the first base's module.
            var classDict = skeleton.State is PyTuple { Count: > 0 } st ? st[0] : skeleton.State;
            var module = Get(classDict as Dictionary<object, object?>, "__module__") as string
                ?? (skeleton.Args.Count > 3 ? Get(skeleton.Args[3] as Dictionary<object, object?>, "__module__") as string : null)
                ?? bases.Find(b => b.Module == RayExceptions)?.Module
                ?? (bases.Count > 0 ? bases[0].Module : "__main__");
            return new ClassInfo(module, name, true, bases);
        }

        return new ClassInfo(string.Empty, PyRepr.Format(obj.Callable, 200), false, []);
    }

    private static Dictionary<object, object?>? StateDict(PyObject obj) => obj.State switch
    {
        Dictionary<object, object?> dict => dict,
        PyTuple { Count: 2 } pair when pair[0] is Dictionary<object, object?> dict => dict, // (state, slotstate)
        PyTuple { Count: 2 } pair when pair[1] is Dictionary<object, object?> slots => slots,
        _ => null,
    };

    private static object? Get(Dictionary<object, object?>? dict, string key) =>
        dict is not null && dict.TryGetValue(key, out var value) ? value : null;

    private static string? StateMessage(ClassInfo cls, Dictionary<object, object?>? state)
    {
        foreach (var key in (ReadOnlySpan<string>)["error_msg", "error_message", "msg", "message"])
        {
            if (Get(state, key) is string { Length: > 0 } text)
            {
                return cls.Name switch
                {
                    "RuntimeEnvSetupError" => $"Failed to set up runtime environment.{Environment.NewLine}{text}",
                    "TaskUnschedulableError" => $"The task is not schedulable: {text}",
                    "ActorUnschedulableError" => $"The actor is not schedulable: {text}",
                    _ => text,
                };
            }
        }

        if (cls.Name == "RaySystemError" && Get(state, "client_exc") is { } clientExc)
        {
            return $"System error: {Str(clientExc)}";
        }

        return null;
    }

    /// <summary>Python's <c>str(exception)</c> from its args.</summary>
    private static string StrOfArgs(ClassInfo cls, PyTuple args)
    {
        if (args.Count == 0)
        {
            return string.Empty;
        }

        if (cls.Module == "builtins" && args.Count >= 2 && args[0] is int errno && args[1] is string strerror && cls.Name.EndsWith("Error", StringComparison.Ordinal))
        {
            // OSError and its subclasses: "[Errno 2] No such file or directory: 'x'".
            var text = string.Create(CultureInfo.InvariantCulture, $"[Errno {errno}] {strerror}");
            return args.Count >= 3 && args[2] is string filename ? $"{text}: {PyRepr.Format(filename)}" : text;
        }

        if (args.Count == 1)
        {
            return cls.Name == "KeyError" ? PyRepr.Format(args[0]) : Str(args[0]);
        }

        return PyRepr.Format(args);
    }

    private static string Str(object? value) => value switch
    {
        string s => s,
        PyObject o when o.Class is { } c && o.Args.Count > 0 => $"{c.Name}({string.Join(", ", o.Args.Select(a => PyRepr.Format(a, 200)))})",
        _ => PyRepr.Format(value, 1000),
    };

    private static string? RayMessage(ClassInfo cls, Dictionary<object, object?>? state)
    {
        if (cls.Module != RayExceptions)
        {
            return null;
        }

        switch (cls.Name)
        {
            case "WorkerCrashedError":
                return "The worker died unexpectedly while executing this task.";
            case "LocalRayletDiedError":
                return "The task's local raylet died.";
            case "TaskPlacementGroupRemoved":
                return "The placement group corresponding to this task has been removed.";
            case "ActorPlacementGroupRemoved":
                return "The placement group corresponding to this actor has been removed.";
            case "TaskCancelledError":
                return IdHex(Get(state, "task_id")) is { } task ? $"Task: {task} was cancelled" : "This task or its dependency was cancelled";
            case "RayActorError" or "ActorDiedError":
                return "The actor died unexpectedly before finishing this task.";
        }

        return Get(state, "object_ref_hex") is string objectHex ? $"Failed to retrieve object {objectHex}." : null;
    }

    /// <summary>Hex of a Ray id object (<c>ray._raylet.TaskID(b"…")</c>).</summary>
    private static string? IdHex(object? id) => id switch
    {
        PyObject { Args: [byte[] bytes] } => Convert.ToHexStringLower(bytes),
        byte[] bytes => Convert.ToHexStringLower(bytes),
        string s => s,
        _ => null,
    };

    private static PythonError Unreadable(ReadOnlySpan<byte> data, string reason)
    {
        var preview = Convert.ToHexStringLower(data[..Math.Min(data.Length, 64)]);
        var more = data.Length > 64 ? "…" : string.Empty;
        return new PythonError(
            "unknown",
            $"The error could not be decoded ({reason}); {data.Length} bytes: {preview}{more}",
            null,
            null,
            null);
    }

    /// <summary>The longest string reachable from <paramref name="root"/> that holds a Python traceback.</summary>
    internal static string? FindLongestTraceback(object? root)
    {
        string? best = null;
        var visited = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<object?>();
        pending.Push(root);
        while (pending.Count > 0 && visited.Count < 100_000)
        {
            var value = pending.Pop();
            switch (value)
            {
                case null:
                    continue;
                case string s:
                    if (s.Length > (best?.Length ?? 0) && s.Contains(TracebackMarker, StringComparison.Ordinal))
                    {
                        best = s;
                    }

                    continue;
                case byte[] or ValueType or PyGlobal:
                    continue;
            }

            if (!visited.Add(value))
            {
                continue;
            }

            switch (value)
            {
                case PyObject o:
                    pending.Push(o.Callable);
                    pending.Push(o.Args);
                    pending.Push(o.State);
                    pending.Push(o.ListItems);
                    pending.Push(o.DictItems);
                    if (o.Kwargs is not null)
                    {
                        pending.Push(o.Kwargs);
                    }

                    break;
                case IDictionary dict:
                    foreach (DictionaryEntry entry in dict)
                    {
                        pending.Push(entry.Key);
                        pending.Push(entry.Value);
                    }

                    break;
                case IEnumerable items:
                    foreach (var item in items)
                    {
                        pending.Push(item);
                    }

                    break;
            }
        }

        return best;
    }

    private sealed record ClassInfo(string Module, string Name, bool ByValue, List<PyGlobal> Bases);
}
