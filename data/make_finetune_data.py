#!/usr/bin/env python3
"""Generate the small synthetic SFT sample set under data/finetune/.

Medical questions and answers in English and Chinese, some multi-turn, some with a system prompt,
written in the three input formats supervised_finetuning.py reads:

    data/finetune/sharegpt_medical.jsonl   ShareGPT: {"conversations": [{"from": "human"|"gpt"|"system", "value"}]}
    data/finetune/openai_medical.jsonl     OpenAI:   {"messages": [{"role": "system"|"user"|"assistant", "content"}]}
    data/finetune/alpaca_medical.json      Alpaca:   a JSON array of {"instruction", "input", "output"[, "system", "history"]}

All text is composed here from hand-written tables; nothing is copied from external sources. One
`random.Random(2024)` drives every choice, so re-running the script reproduces identical files.
The text is synthetic, for exercising the pipeline only: it is NOT medical advice.

Usage:  python data/make_finetune_data.py
"""

import json
import os
import random

SEED = 2024
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "finetune")

CONDITIONS = [
    {"en": "hypertension", "zh": "高血压",
     "sym_en": ["headache", "dizziness", "blurred vision", "often no symptoms at all"],
     "sym_zh": ["头痛", "头晕", "视物模糊", "很多人完全没有症状"],
     "test_en": "repeated blood pressure readings, ideally with home or ambulatory monitoring",
     "test_zh": "多次测量血压，最好结合家庭自测或动态血压监测",
     "life_en": ["eat less salt", "exercise for 150 minutes a week", "limit alcohol", "keep a healthy weight"],
     "life_zh": ["减少食盐摄入", "每周运动约150分钟", "限制饮酒", "保持健康体重"],
     "drug_en": "amlodipine or an ACE inhibitor such as lisinopril", "drug_zh": "氨氯地平或ACE抑制剂（如赖诺普利）",
     "red_en": "a severe headache with chest pain or weakness on one side", "red_zh": "剧烈头痛伴胸痛或一侧肢体无力",
     "check_en": "every three to six months once it is controlled", "check_zh": "血压控制稳定后每三到六个月复查一次"},
    {"en": "type 2 diabetes", "zh": "2型糖尿病",
     "sym_en": ["increased thirst", "frequent urination", "tiredness", "slow-healing wounds"],
     "sym_zh": ["口渴多饮", "尿频", "乏力", "伤口愈合慢"],
     "test_en": "an HbA1c test or a fasting plasma glucose test", "test_zh": "糖化血红蛋白或空腹血糖检测",
     "life_en": ["choose whole grains and vegetables", "walk after meals", "lose weight if overweight",
                 "check your feet every day"],
     "life_zh": ["多吃全谷物和蔬菜", "饭后散步", "超重者减轻体重", "每天检查双脚"],
     "drug_en": "metformin, taken with meals", "drug_zh": "二甲双胍，随餐服用",
     "red_en": "confusion, vomiting or very high glucose readings", "red_zh": "意识模糊、呕吐或血糖极高",
     "check_en": "an HbA1c test every three months until stable", "check_zh": "血糖稳定前每三个月查一次糖化血红蛋白"},
    {"en": "asthma", "zh": "哮喘",
     "sym_en": ["wheezing", "shortness of breath", "chest tightness", "a cough at night"],
     "sym_zh": ["喘息", "气短", "胸闷", "夜间咳嗽"],
     "test_en": "spirometry with a bronchodilator test", "test_zh": "肺功能检查和支气管舒张试验",
     "life_en": ["avoid smoke and known triggers", "use the inhaler with good technique",
                 "keep a written action plan", "get a yearly flu vaccine"],
     "life_zh": ["避免烟雾和已知诱因", "正确使用吸入器", "准备书面哮喘行动计划", "每年接种流感疫苗"],
     "drug_en": "an inhaled corticosteroid, with a reliever inhaler for attacks",
     "drug_zh": "吸入性糖皮质激素，发作时使用缓解类吸入剂",
     "red_en": "trouble speaking in full sentences or blue lips", "red_zh": "说话不成句或口唇发紫",
     "check_en": "a review every few months, and after any attack", "check_zh": "每隔几个月复诊一次，每次发作后也要复诊"},
    {"en": "migraine", "zh": "偏头痛",
     "sym_en": ["a throbbing one-sided headache", "nausea", "sensitivity to light", "visual aura"],
     "sym_zh": ["单侧搏动性头痛", "恶心", "畏光", "视觉先兆"],
     "test_en": "a careful history and examination; scans are needed only with warning signs",
     "test_zh": "详细询问病史并查体，只有出现警示信号时才需要影像检查",
     "life_en": ["keep regular sleep", "do not skip meals", "keep a headache diary", "limit caffeine"],
     "life_zh": ["规律作息", "按时吃饭", "记录头痛日记", "限制咖啡因"],
     "drug_en": "ibuprofen or a triptan taken early in the attack", "drug_zh": "发作早期服用布洛芬或曲坦类药物",
     "red_en": "a sudden 'worst ever' headache or a headache with fever and stiff neck",
     "red_zh": "突发的剧烈头痛，或头痛伴发热和颈部僵硬",
     "check_en": "a review if attacks happen more than four days a month", "check_zh": "每月发作超过四天时应复诊"},
    {"en": "gastroesophageal reflux disease", "zh": "胃食管反流病",
     "sym_en": ["heartburn", "acid regurgitation", "a sour taste", "chest discomfort after meals"],
     "sym_zh": ["烧心", "反酸", "口苦", "饭后胸部不适"],
     "test_en": "a trial of treatment, and an endoscopy if symptoms persist",
     "test_zh": "先试验性治疗，症状持续时做胃镜检查",
     "life_en": ["eat smaller meals", "avoid lying down after eating", "raise the head of the bed",
                 "cut down on fatty food"],
     "life_zh": ["少食多餐", "饭后不要立即躺下", "抬高床头", "减少油腻食物"],
     "drug_en": "a proton pump inhibitor such as omeprazole", "drug_zh": "质子泵抑制剂，如奥美拉唑",
     "red_en": "difficulty swallowing, vomiting blood or black stools", "red_zh": "吞咽困难、呕血或黑便",
     "check_en": "a review after eight weeks of treatment", "check_zh": "治疗八周后复诊"},
    {"en": "iron deficiency anaemia", "zh": "缺铁性贫血",
     "sym_en": ["tiredness", "pale skin", "shortness of breath on exertion", "brittle nails"],
     "sym_zh": ["乏力", "面色苍白", "活动后气短", "指甲易脆"],
     "test_en": "a full blood count and serum ferritin", "test_zh": "血常规和血清铁蛋白",
     "life_en": ["eat iron-rich foods such as lean meat and beans", "take vitamin C with meals",
                 "avoid tea with meals", "find the cause of blood loss"],
     "life_zh": ["多吃瘦肉、豆类等富含铁的食物", "随餐补充维生素C", "吃饭时避免喝茶", "查明失血原因"],
     "drug_en": "oral iron tablets, often taken every other day", "drug_zh": "口服铁剂，常隔日服用",
     "red_en": "chest pain, fainting or black stools", "red_zh": "胸痛、晕厥或黑便",
     "check_en": "a blood count after four weeks of iron", "check_zh": "补铁四周后复查血常规"},
    {"en": "osteoarthritis of the knee", "zh": "膝骨关节炎",
     "sym_en": ["knee pain on walking", "morning stiffness that eases within half an hour", "swelling",
                "a grinding feeling"],
     "sym_zh": ["行走时膝痛", "晨僵半小时内缓解", "关节肿胀", "关节摩擦感"],
     "test_en": "a clinical examination, with an X-ray when the diagnosis is unclear",
     "test_zh": "临床查体，诊断不清时拍X线片",
     "life_en": ["strengthen the thigh muscles", "lose weight if overweight", "swim or cycle",
                 "use a walking stick on the other side"],
     "life_zh": ["锻炼大腿肌肉", "超重者减重", "游泳或骑车", "在对侧使用手杖"],
     "drug_en": "topical anti-inflammatory gel, then paracetamol or ibuprofen",
     "drug_zh": "外用消炎镇痛凝胶，其次是对乙酰氨基酚或布洛芬",
     "red_en": "a hot, very swollen joint with fever", "red_zh": "关节红肿发热并伴有发烧",
     "check_en": "a review when pain limits daily activities", "check_zh": "疼痛影响日常活动时复诊"},
    {"en": "depression", "zh": "抑郁症",
     "sym_en": ["low mood most days", "loss of interest", "poor sleep", "difficulty concentrating"],
     "sym_zh": ["大多数时间情绪低落", "兴趣减退", "睡眠差", "注意力难以集中"],
     "test_en": "a clinical interview, often with a questionnaire such as the PHQ-9",
     "test_zh": "临床访谈，常结合PHQ-9等量表",
     "life_en": ["keep a daily routine", "stay physically active", "stay in touch with people",
                 "avoid alcohol"],
     "life_zh": ["保持规律的日常安排", "坚持体育活动", "多与人交流", "避免饮酒"],
     "drug_en": "talking therapy, and for moderate illness an antidepressant such as sertraline",
     "drug_zh": "心理治疗，中度以上可使用舍曲林等抗抑郁药",
     "red_en": "thoughts of self-harm or suicide", "red_zh": "出现自伤或自杀的念头",
     "check_en": "a review within two weeks of starting treatment", "check_zh": "开始治疗后两周内复诊"},
    {"en": "urinary tract infection", "zh": "尿路感染",
     "sym_en": ["burning when passing urine", "needing to go often", "cloudy urine", "lower belly pain"],
     "sym_zh": ["排尿灼痛", "尿频", "尿液浑浊", "下腹痛"],
     "test_en": "a urine dipstick, and a urine culture in men, pregnancy or recurrent cases",
     "test_zh": "尿常规试纸检查，男性、孕妇或反复发作者需做尿培养",
     "life_en": ["drink enough water", "do not delay passing urine", "wipe from front to back",
                 "finish the prescribed course"],
     "life_zh": ["多喝水", "不要憋尿", "如厕后从前向后擦拭", "按疗程服完药"],
     "drug_en": "a short course of an antibiotic such as nitrofurantoin", "drug_zh": "短疗程抗生素，如呋喃妥因",
     "red_en": "fever, loin pain or vomiting", "red_zh": "发热、腰痛或呕吐",
     "check_en": "a review if symptoms are not better after two days", "check_zh": "两天后症状无好转应复诊"},
    {"en": "high cholesterol", "zh": "高胆固醇血症",
     "sym_en": ["usually no symptoms", "yellowish deposits around the eyes in some people",
                "early heart disease in the family", "found on a routine blood test"],
     "sym_zh": ["通常没有症状", "部分人眼睑周围出现黄色斑块", "家族中有早发心脏病", "常在体检抽血时发现"],
     "test_en": "a lipid profile, with a cardiovascular risk estimate", "test_zh": "血脂检查，并评估心血管风险",
     "life_en": ["replace saturated fat with olive oil and nuts", "eat more fibre", "exercise regularly",
                 "stop smoking"],
     "life_zh": ["用橄榄油和坚果代替饱和脂肪", "多吃膳食纤维", "规律运动", "戒烟"],
     "drug_en": "a statin such as atorvastatin", "drug_zh": "他汀类药物，如阿托伐他汀",
     "red_en": "chest pain on exertion", "red_zh": "活动时胸痛",
     "check_en": "a lipid test three months after starting a statin", "check_zh": "服用他汀三个月后复查血脂"},
]

SYSTEM_EN = ["You are a careful medical assistant. Give clear, general health information and say when "
             "someone should see a doctor.",
             "You are a friendly clinic nurse answering patients' questions in plain English."]
SYSTEM_ZH = ["你是一名严谨的医学助手，请用通俗易懂的语言回答健康问题，必要时建议就医。",
             "你是社区医院的全科医生，请简洁、准确地回答患者的问题。"]

PATIENTS_EN = ["a 56-year-old man", "a 34-year-old woman", "a 70-year-old retired teacher", "a 45-year-old driver",
               "a 28-year-old office worker", "a 63-year-old woman with two children"]
PATIENTS_ZH = ["56岁男性", "34岁女性", "70岁退休教师", "45岁司机", "28岁上班族", "63岁女性"]


def join_en(items):
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def qa_en(c, kind, rng):
    n = c["en"]
    if kind == "symptoms":
        q = rng.choice([f"What are the common symptoms of {n}?", f"How do I know if I have {n}?",
                        f"What symptoms does {n} cause?"])
        a = (f"Common symptoms of {n} include {join_en(rng.sample(c['sym_en'], 3))}. Symptoms vary between "
             f"people, so a doctor confirms it with {c['test_en']}.")
    elif kind == "diagnosis":
        q = rng.choice([f"How is {n} diagnosed?", f"Which tests are used for {n}?"])
        a = f"{n[0].upper() + n[1:]} is usually diagnosed with {c['test_en']}."
    elif kind == "lifestyle":
        q = rng.choice([f"What lifestyle changes help with {n}?", f"What can I do at home about {n}?"])
        tips = rng.sample(c["life_en"], 3)
        a = "Helpful steps are: " + "; ".join(f"{i + 1}. {t}" for i, t in enumerate(tips)) + ". Small, steady changes work best."
    elif kind == "treatment":
        q = rng.choice([f"What medicine is used for {n}?", f"Is there a medication for {n}?"])
        a = (f"A common first choice is {c['drug_en']}. The right treatment depends on the person, so it should "
             "be chosen with a doctor, who also checks for side effects.")
    elif kind == "urgent":
        q = rng.choice([f"When is {n} an emergency?", f"Which warning signs of {n} need urgent care?"])
        a = f"Seek urgent care for {c['red_en']}. Do not wait for a routine appointment in that case."
    else:
        q = rng.choice([f"How often should {n} be checked?", f"How often do I need a follow-up for {n}?"])
        a = f"A typical plan is {c['check_en']}, but your doctor may suggest a different schedule."
    return q, a


def qa_zh(c, kind, rng):
    n = c["zh"]
    if kind == "symptoms":
        q = rng.choice([f"{n}有哪些常见症状？", f"怎么判断自己是不是得了{n}？"])
        a = f"{n}的常见表现有{'、'.join(rng.sample(c['sym_zh'], 3))}。每个人的症状不同，需要通过{c['test_zh']}来确诊。"
    elif kind == "diagnosis":
        q = rng.choice([f"{n}一般怎么诊断？", f"{n}需要做哪些检查？"])
        a = f"{n}通常通过{c['test_zh']}来诊断。"
    elif kind == "lifestyle":
        q = rng.choice([f"{n}患者在生活上应注意什么？", f"得了{n}平时要怎么调理？"])
        tips = rng.sample(c["life_zh"], 3)
        a = "建议：" + "；".join(f"{i + 1}. {t}" for i, t in enumerate(tips)) + "。循序渐进、长期坚持效果最好。"
    elif kind == "treatment":
        q = rng.choice([f"{n}用什么药治疗？", f"{n}需要吃药吗？"])
        a = f"常用的首选方案是{c['drug_zh']}。具体用药因人而异，应在医生指导下选择，并注意观察不良反应。"
    elif kind == "urgent":
        q = rng.choice([f"{n}出现什么情况要马上就医？", f"{n}有哪些危险信号？"])
        a = f"如果出现{c['red_zh']}，应立即就医，不要等待常规门诊。"
    else:
        q = rng.choice([f"{n}多久复查一次？", f"{n}需要定期随访吗？"])
        a = f"一般建议{c['check_zh']}，具体安排请听从医生的意见。"
    return q, a


KINDS = ["symptoms", "diagnosis", "lifestyle", "treatment", "urgent", "follow_up"]


def conversation(rng):
    """(system or None, [(question, answer), ...]) in one language, 1 to 3 turns about one condition."""
    c = rng.choice(CONDITIONS)
    zh = rng.random() < 0.5
    n_turns = rng.choices([1, 2, 3], weights=[55, 30, 15])[0]
    kinds = rng.sample(KINDS, n_turns)
    qa = qa_zh if zh else qa_en
    turns = [qa(c, k, rng) for k in kinds]
    if n_turns > 1:  # follow-ups refer back to the first question
        follow = ["那应该怎么办？", "还有别的需要注意的吗？"] if zh else ["And what else should I know?", "What should I do then?"]
        turns = [turns[0]] + [(rng.choice(follow) + " " + q if rng.random() < 0.3 else q, a) for q, a in turns[1:]]
    system = None
    if rng.random() < 0.35:
        system = rng.choice(SYSTEM_ZH if zh else SYSTEM_EN)
    return system, turns


def sharegpt(rng, n):
    rows = []
    for _ in range(n):
        system, turns = conversation(rng)
        conv = [{"from": "system", "value": system}] if system else []
        for q, a in turns:
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        rows.append({"conversations": conv})
    return rows


def openai(rng, n):
    rows = []
    for _ in range(n):
        system, turns = conversation(rng)
        msgs = [{"role": "system", "content": system}] if system else []
        for q, a in turns:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        rows.append({"messages": msgs})
    return rows


def alpaca(rng, n):
    rows = []
    for _ in range(n):
        c = rng.choice(CONDITIONS)
        zh = rng.random() < 0.5
        kind = rng.choice(KINDS)
        row = {}
        if rng.random() < 0.4:  # an instruction about a patient given as input
            k = rng.randrange(len(PATIENTS_EN))
            if zh:
                row["instruction"] = f"根据以下患者情况，给出关于{c['zh']}的简要建议。"
                row["input"] = f"{PATIENTS_ZH[k]}，已确诊{c['zh']}，想了解日常注意事项。"
                row["output"] = "建议：" + "；".join(rng.sample(c["life_zh"], 3)) + f"。另外，{c['check_zh']}。"
            else:
                row["instruction"] = f"Give brief advice about {c['en']} for the patient described below."
                row["input"] = f"{PATIENTS_EN[k]} recently diagnosed with {c['en']} asks about daily care."
                row["output"] = ("Advice: " + "; ".join(rng.sample(c["life_en"], 3)) + f". Also plan {c['check_en']}.")
        else:
            q, a = (qa_zh if zh else qa_en)(c, kind, rng)
            row.update(instruction=q, input="", output=a)
        if rng.random() < 0.2:  # an earlier exchange
            hk = rng.choice([k for k in KINDS if k != kind])
            row["history"] = [list((qa_zh if zh else qa_en)(c, hk, rng))]
        if rng.random() < 0.25:
            row["system"] = rng.choice(SYSTEM_ZH if zh else SYSTEM_EN)
        rows.append(row)
    return rows


def main():
    rng = random.Random(SEED)
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "sharegpt_medical.jsonl"), "w", encoding="utf-8") as fh:
        for row in sharegpt(rng, 160):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT_DIR, "openai_medical.jsonl"), "w", encoding="utf-8") as fh:
        for row in openai(rng, 120):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT_DIR, "alpaca_medical.json"), "w", encoding="utf-8") as fh:
        json.dump(alpaca(rng, 120), fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    print(f"wrote 400 samples to {OUT_DIR}")


if __name__ == "__main__":
    main()
