namespace RayClient;

/// <summary>
/// A Python function that lives on the cluster, referenced by module and name, as Ray's Java API
/// does with <c>PyFunction.of</c>. The module must be importable on the cluster: installed there,
/// or shipped with the job's <c>working_dir</c>/<c>py_modules</c>.
/// </summary>
/// <typeparam name="TResult">The .NET type the function's return value is read as.</typeparam>
public sealed class PyFunction<TResult>
{
    private PyFunction(string moduleName, string functionName)
    {
        ModuleName = moduleName;
        FunctionName = functionName;
    }

    /// <summary>Python module, e.g. <c>mypkg.tasks</c>.</summary>
    public string ModuleName { get; }

    /// <summary>Function name within the module; dotted names reach nested attributes (e.g. <c>add._function</c> for an <c>@ray.remote</c> function).</summary>
    public string FunctionName { get; }

    /// <summary>References <paramref name="moduleName"/>.<paramref name="functionName"/>.</summary>
    public static PyFunction<TResult> Of(string moduleName, string functionName)
    {
        PyNames.Validate(moduleName, functionName);
        return new PyFunction<TResult>(moduleName, functionName);
    }

    /// <inheritdoc />
    public override string ToString() => $"{ModuleName}.{FunctionName}";
}

/// <summary>Factory for <see cref="PyFunction{TResult}"/> when the result type is not known in advance.</summary>
public static class PyFunction
{
    /// <summary>References a Python function whose result is read untyped (see the value mapping).</summary>
    public static PyFunction<object?> Of(string moduleName, string functionName) => PyFunction<object?>.Of(moduleName, functionName);

    /// <summary>References a Python function whose result is read as <typeparamref name="TResult"/>.</summary>
    public static PyFunction<TResult> Of<TResult>(string moduleName, string functionName) => PyFunction<TResult>.Of(moduleName, functionName);
}

internal static class PyNames
{
    public static void Validate(string moduleName, string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(moduleName);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        foreach (var part in moduleName.Split('.').Concat(name.Split('.')))
        {
            if (part.Length == 0 || !(char.IsLetter(part[0]) || part[0] == '_') || !part.All(c => char.IsLetterOrDigit(c) || c == '_'))
            {
                throw new ArgumentException($"'{moduleName}' / '{name}' is not a valid Python module and attribute name ('{part}').");
            }
        }
    }
}
