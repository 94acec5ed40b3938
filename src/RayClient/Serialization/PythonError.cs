namespace RayClient.Serialization;

/// <summary>
/// A Python exception decoded from a pickle without Python (spec §6.6).
/// </summary>
/// <param name="TypeName">Qualified class name: <c>builtins.ValueError</c>, <c>ray.exceptions.GetTimeoutError</c>, <c>ray.exceptions.RayTaskError(ValueError)</c>; <c>unknown</c> when the bytes were not readable.</param>
/// <param name="Message">What Python's <c>str(exception)</c> would show, as far as it can be told without running Python.</param>
/// <param name="Traceback">The remote traceback text (Ray task errors), or null.</param>
/// <param name="Cause">The exception a <c>RayTaskError</c> wraps (the user's exception), or null.</param>
/// <param name="FunctionName">The remote function a <c>RayTaskError</c> came from, when known.</param>
internal sealed record PythonError(string TypeName, string Message, string? Traceback, PythonError? Cause, string? FunctionName)
{
    /// <summary><c>TypeName: Message</c>.</summary>
    public override string ToString() => Message.Length == 0 ? TypeName : $"{TypeName}: {Message}";
}
