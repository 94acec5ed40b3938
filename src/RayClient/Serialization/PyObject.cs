namespace RayClient.Serialization;

/// <summary>
/// A Python object the unpickler does not know how to turn into a .NET value: an instance of a
/// class it does not evaluate (<c>REDUCE</c>, <c>NEWOBJ</c>, <c>NEWOBJ_EX</c>), with the state a
/// <c>BUILD</c> gave it. Nothing is executed: this is a description of how Python would rebuild
/// the object. Writing a <see cref="PyObject"/> back reproduces the same opcodes.
/// </summary>
public sealed class PyObject
{
    internal PyObject(object callable, PyTuple args, bool isNewObj, IReadOnlyDictionary<string, object?>? kwargs = null)
    {
        Callable = callable;
        Args = args;
        IsNewObj = isNewObj;
        Kwargs = kwargs;
    }

    /// <summary>
    /// What Python calls to rebuild the object: a <see cref="PyGlobal"/> (a class or a factory
    /// function), or another <see cref="PyObject"/> (for example a class pickled by value).
    /// </summary>
    public object Callable { get; }

    /// <summary>
    /// The class of the object when it is known by name: the callable itself, or the class argument
    /// of <c>copyreg._reconstructor</c>; null when the class was pickled by value.
    /// </summary>
    public PyGlobal? Class =>
        Callable is PyGlobal { Module: "copyreg", Name: "_reconstructor" or "__newobj__" or "__newobj_ex__" } && Args.Count > 0 && Args[0] is PyGlobal cls
            ? cls
            : Callable as PyGlobal;

    /// <summary>The positional arguments of the call.</summary>
    public PyTuple Args { get; }

    /// <summary>Keyword arguments (<c>NEWOBJ_EX</c> only), otherwise null.</summary>
    public IReadOnlyDictionary<string, object?>? Kwargs { get; }

    /// <summary>The state given by <c>BUILD</c> (usually the instance <c>__dict__</c>, or a <c>(dict, slots)</c> tuple), or null.</summary>
    public object? State { get; internal set; }

    /// <summary>Items appended to the object after it was created (list subclasses), or null.</summary>
    public IReadOnlyList<object?>? ListItems => ListItemsBuilder;

    /// <summary>Items set on the object after it was created (dict subclasses), or null.</summary>
    public IReadOnlyDictionary<object, object?>? DictItems => DictItemsBuilder;

    /// <summary>True when Python creates the object with <c>cls.__new__(cls, *args)</c> (<c>NEWOBJ</c>) instead of calling <see cref="Callable"/>.</summary>
    internal bool IsNewObj { get; }

    internal List<object?>? ListItemsBuilder { get; set; }

    internal Dictionary<object, object?>? DictItemsBuilder { get; set; }

    /// <summary>A Python-like description, e.g. <c>&lt;mymod.Point object, args=(1, 2)&gt;</c>.</summary>
    public override string ToString() => PyRepr.Format(this);
}
