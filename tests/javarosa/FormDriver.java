// Drives compiled XForms with JavaRosa, the form engine inside ODK Collect, for the form-logic
// tests. One JVM serves many requests: one tab-separated command per line on stdin, one reply
// line on stdout ("OK", "VALUE\t<text>" or "ERR\t<message>").
//
//   LOAD  <xform file>           parse and initialise a new, empty instance of the form
//   SET   <ref> <value>          answer a field (typed by its bind) and recompute the form
//   GET   <ref>                  a field's current value ("" when empty)
//   RELEVANT <ref>               "true" when the field or group is relevant now
//   ANSWER <ref> <value>         answer as ODK Collect does, walking the form to the question:
//                                "ok", "constraint" (rejected), "required" or "not-shown"
//   EVAL  <xpath>                an expression in the form's context; node-sets come back as
//                                their values joined by the unit separator (0x1f)

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import org.javarosa.core.model.Constants;
import org.javarosa.core.model.FormDef;
import org.javarosa.core.model.FormIndex;
import org.javarosa.core.model.data.DateData;
import org.javarosa.core.model.data.DateTimeData;
import org.javarosa.core.model.data.DecimalData;
import org.javarosa.core.model.data.IAnswerData;
import org.javarosa.core.model.data.IntegerData;
import org.javarosa.core.model.data.SelectMultiData;
import org.javarosa.core.model.data.SelectOneData;
import org.javarosa.core.model.data.StringData;
import org.javarosa.core.model.data.helper.Selection;
import org.javarosa.core.model.instance.InstanceInitializationFactory;
import org.javarosa.core.model.instance.TreeElement;
import org.javarosa.core.model.instance.TreeReference;
import org.javarosa.core.model.utils.DateUtils;
import org.javarosa.core.services.PropertyManager;
import org.javarosa.form.api.FormEntryController;
import org.javarosa.form.api.FormEntryModel;
import org.javarosa.model.xform.XPathReference;
import org.javarosa.xform.util.XFormUtils;
import org.javarosa.xpath.XPathNodeset;
import org.javarosa.xpath.XPathParseTool;
import org.javarosa.xpath.expr.XPathFuncExpr;

public class FormDriver {
    private static FormDef form;

    public static void main(String[] args) throws Exception {
        PropertyManager.setPropertyManager(new org.opendatakit.validate.StubPropertyManager());
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        // JavaRosa logs to stdout; keep the reply channel clean.
        System.setOut(new PrintStream(System.err, true, "UTF-8"));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            try {
                out.println(handle(line.split("\t", -1)));
            } catch (Throwable e) {
                out.println("ERR\t" + String.valueOf(e).replace('\n', ' ').replace('\t', ' '));
            }
        }
    }

    private static String handle(String[] cmd) throws Exception {
        switch (cmd[0]) {
            case "LOAD":
                byte[] xml = Files.readAllBytes(Paths.get(cmd[1]));
                form = XFormUtils.getFormFromInputStream(new ByteArrayInputStream(xml));
                form.initialize(true, new InstanceInitializationFactory());
                return "OK";
            case "SET": {
                TreeReference ref = reference(cmd[1]);
                form.setValue(answer(element(ref), cmd[2]), ref, true);
                return "OK";
            }
            case "GET": {
                IAnswerData value = element(reference(cmd[1])).getValue();
                return "VALUE\t" + (value == null ? "" : value.uncast().getString());
            }
            case "RELEVANT":
                return "VALUE\t" + element(reference(cmd[1])).isRelevant();
            case "ANSWER":
                return "VALUE\t" + answerLikeCollect(reference(cmd[1]), cmd[2]);
            case "EVAL": {
                Object result = XPathParseTool.parseXPath(cmd[1])
                        .eval(form.getMainInstance(), form.getEvaluationContext());
                if (result instanceof XPathNodeset) {
                    XPathNodeset nodes = (XPathNodeset) result;
                    List<String> values = new ArrayList<>();
                    for (int i = 0; i < nodes.size(); i++) {
                        values.add(XPathFuncExpr.toString(nodes.getValAt(i)));
                    }
                    return "VALUE\t" + String.join("\u001f", values);
                }
                return "VALUE\t" + XPathFuncExpr.toString(result);
            }
            default:
                return "ERR\tunknown command " + cmd[0];
        }
    }

    private static String answerLikeCollect(TreeReference ref, String value) {
        FormEntryController controller = new FormEntryController(new FormEntryModel(form));
        controller.jumpToIndex(FormIndex.createBeginningOfFormIndex());
        int event;
        int steps = 0;
        while ((event = controller.stepToNextEvent()) != FormEntryController.EVENT_END_OF_FORM
                && steps++ < 10000) {
            if (event == FormEntryController.EVENT_QUESTION
                    && ref.genericize().equals(
                            controller.getModel().getFormIndex().getReference().genericize())) {
                int result = controller.answerQuestion(answer(element(ref), value), true);
                if (result == FormEntryController.ANSWER_OK) return "ok";
                if (result == FormEntryController.ANSWER_CONSTRAINT_VIOLATED) return "constraint";
                if (result == FormEntryController.ANSWER_REQUIRED_BUT_EMPTY) return "required";
                return "code " + result;
            }
        }
        return "not-shown";
    }

    private static TreeReference reference(String path) {
        return (TreeReference) new XPathReference(path).getReference();
    }

    private static TreeElement element(TreeReference ref) {
        TreeElement element = form.getMainInstance().resolveReference(ref);
        if (element == null) {
            throw new IllegalArgumentException("no field at " + ref);
        }
        return element;
    }

    private static IAnswerData answer(TreeElement element, String value) {
        if (value.isEmpty()) {
            return null;
        }
        switch (element.getDataType()) {
            case Constants.DATATYPE_INTEGER:
                return new IntegerData(Integer.parseInt(value));
            case Constants.DATATYPE_DECIMAL:
                return new DecimalData(Double.parseDouble(value));
            case Constants.DATATYPE_DATE:
                return new DateData(DateUtils.parseDate(value));
            case Constants.DATATYPE_DATE_TIME:
                return new DateTimeData(DateUtils.parseDateTime(value));
            case Constants.DATATYPE_CHOICE:
                return new SelectOneData(new Selection(value));
            case Constants.DATATYPE_CHOICE_LIST: {
                List<Selection> selections = new ArrayList<>();
                for (String choice : value.split(" ")) {
                    selections.add(new Selection(choice));
                }
                return new SelectMultiData(selections);
            }
            default:
                return new StringData(value);
        }
    }
}
