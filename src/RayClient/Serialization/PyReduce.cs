namespace RayClient.Serialization;

/// <summary>
/// Write-only helper: pickles as <c>callable(*args)</c> (the <c>REDUCE</c> opcode), which the
/// receiving Python process evaluates while unpickling. For example
/// <c>new PyReduce(new PyGlobal("ray.job_config", "JobConfig.from_json"), new PyTuple(dict))</c>
/// makes the server build a <c>JobConfig</c> through its own code.
/// </summary>
/// <param name="Callable">What to call: usually a <see cref="PyGlobal"/>, or another value that is callable in Python.</param>
/// <param name="Args">The positional arguments.</param>
public sealed record PyReduce(object Callable, PyTuple Args);
