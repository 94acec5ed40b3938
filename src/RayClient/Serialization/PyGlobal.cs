namespace RayClient.Serialization;

/// <summary>
/// A reference to a Python global (a class or function) by module and qualified name, such as
/// <c>new PyGlobal("mypkg.tasks", "add")</c>. The pickler writes it as <c>STACK_GLOBAL</c>, so the
/// receiving Python process imports the module and looks the name up (dotted names such as
/// <c>"JobConfig.from_json"</c> are resolved attribute by attribute). The unpickler returns every
/// global it does not evaluate itself as a <see cref="PyGlobal"/>: it never imports anything.
/// </summary>
/// <param name="Module">The module, e.g. <c>"mypkg.tasks"</c>.</param>
/// <param name="Name">The qualified name inside the module, e.g. <c>"add"</c> or <c>"Outer.inner"</c>.</param>
public sealed record PyGlobal(string Module, string Name)
{
    /// <summary>The dotted full name, e.g. <c>mypkg.tasks.add</c>.</summary>
    public override string ToString() => Module.Length == 0 ? Name : $"{Module}.{Name}";
}
